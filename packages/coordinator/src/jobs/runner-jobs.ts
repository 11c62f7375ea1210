import type {
  Accept,
  CoordinatorMessage,
  Hello,
  LogFrame,
  Reject,
  ResultFrame,
  RunnerStatus,
  Started,
} from '@rbtk/protocol';
import { isTerminalJobState } from '@rbtk/protocol';
import type { RunnerRecord } from '../store/rows.js';
import { requeueFree, runnerGone, started } from './decisions.js';
import type { JobService } from './job-service.js';
import { stoppingKey } from './runner-index.js';

type Send = (message: CoordinatorMessage) => void;

/**
 * The job side of one runner session: its entry in the dispatch index and its
 * accept / reject / started / log / result frames, each fenced by attempt.
 * `owner` tells this session's index entry from a newer session's.
 */
export class RunnerJobs {
  private readonly owner = {};

  constructor(
    private readonly jobs: JobService,
    private readonly runnerId: string,
    private readonly send: Send,
    /** False once the session is closing (revoked, replaced, reaped): it must not join the index then. */
    private readonly open: () => boolean = () => true,
  ) {}

  /**
   * hello: reconcile what the runner holds with what the store says it runs.
   * Held attempts that are no longer current are cancelled (stale), and keep
   * their slot until they end; attempts the store has on this runner that it
   * does not hold are lost (runnerGone, as runner_lost). Then the runner joins the
   * dispatch index.
   *
   * Everything the entry is built from is read after the last await: a
   * change committed meanwhile (an accept timeout, a cancel) ran its effects
   * before the entry existed, and must not be undone by an older read.
   */
  async onHello(runner: RunnerRecord, hello: Hello): Promise<void> {
    const { store, now } = this.jobs.deps;
    // hello may change the runner's labels and executors, which routing reads.
    this.jobs.routingChanged();
    // A finished attempt may be the current one with its result still unacknowledged: the resend settles it.
    const settled = new Set<string>();
    for (const held of hello.held.filter((h) => h.finished)) {
      const stored = await store.jobs.get(held.jobId);
      if (stored && stored.attempt === held.attempt && stored.runnerId === this.runnerId) settled.add(stoppingKey(held.jobId, held.attempt));
    }
    // The last await. Its status too: an operator may have drained the runner (or its pool) meanwhile.
    const [inFlight, row] = await Promise.all([store.jobs.inFlight(this.runnerId), store.runners.get(this.runnerId)]);
    // Revoked or reaped while this hello read (its row deleted, its session closed): joining the index now
    // would hand it jobs until its socket's close event, each lost to the accept timeout at best.
    if (!row || !this.open()) return;
    const status = row.status;

    // From here to index.add, nothing awaits.
    const current = new Set(inFlight.map((j) => stoppingKey(j.id, j.attempt)));
    /** Stale attempts still running there: each holds a slot (and its GPUs) until the runner reports it ended. */
    const stopping = new Map<string, readonly string[]>();
    for (const held of hello.held) {
      const key = stoppingKey(held.jobId, held.attempt);
      if (current.has(key) || settled.has(key)) continue;
      if (!held.finished) stopping.set(key, held.gpus ?? []);
      this.send({ type: 'cancel', jobId: held.jobId, attempt: held.attempt, reason: 'stale' });
    }
    const heldByKey = new Map(hello.held.map((h) => [stoppingKey(h.jobId, h.attempt), h]));
    // An attempt the coordinator ended that the runner no longer holds sends no more log.
    this.jobs.tails.closeAllBut(this.runnerId, new Set(heldByKey.keys()));
    const heldOf = (j: { id: string; attempt: number }) => heldByKey.get(stoppingKey(j.id, j.attempt));
    const kept = inFlight.filter((j) => heldOf(j));
    const notHeld = inFlight.filter((j) => !heldOf(j));
    this.jobs.index.add({
      id: runner.id,
      poolId: runner.poolId,
      status,
      executors: new Set(hello.capabilities.executors),
      labels: hello.capabilities.labels,
      airgapped: runner.airgapped,
      maxJobs: hello.capabilities.maxJobs,
      gpus: hello.capabilities.gpus?.usable ? hello.capabilities.gpus.gpus : [],
      // The GPUs each kept attempt holds, as the runner says: nobody else gets them. The ones it does
      // not hold are in too, until the requeue below takes them out (its effects release them here).
      inFlight: new Map(inFlight.map((j) => [j.id, { attempt: j.attempt, gpus: heldOf(j)?.gpus ?? [] }])),
      stopping,
      restingUntil: 0,
      refusals: 0,
      owner: this.owner,
      send: this.send,
    });
    for (const j of kept) {
      // It holds the attempt: it accepted it, or its accept follows once the attempt's spool is written
      // (a spool that is never written is an accept that never comes). A cancel asked for meanwhile is repeated.
      if (heldOf(j)?.accepting) this.jobs.awaitAccept(j.id, j.attempt, this.runnerId);
      else this.jobs.clearAcceptTimer(j.id, j.attempt, this.runnerId);
      if (j.cancelRequested) this.send({ type: 'cancel', jobId: j.id, attempt: j.attempt, reason: 'cancelled' });
    }
    this.jobs.members?.hello(runner.id);
    const t = now();
    await this.jobs.apply(notHeld.map((j) => ({ jobId: j.id, decide: runnerGone(this.runnerId, j.attempt, 'runner_lost', t) })));
    this.jobs.dispatcher.kick(runner.poolId);
  }

  /** Heartbeat, a drain or liveness changed the runner's status: ONLINE again means free slots to fill. */
  onStatus(status: RunnerStatus): void {
    const entry = this.jobs.index.get(this.runnerId);
    if (!entry || entry.owner !== this.owner) return;
    this.jobs.runnerStatusChanged(this.runnerId, status);
  }

  /** The socket closed: no new work goes to it; its attempts stay until it is OFFLINE or says hello again. */
  onClose(): void {
    this.jobs.index.remove(this.runnerId, this.owner);
  }

  onAccept(frame: Accept): void {
    this.jobs.clearAcceptTimer(frame.jobId, frame.attempt, this.runnerId);
    this.jobs.index.took(this.runnerId, frame.jobId, frame.attempt);
  }

  /**
   * The runner does not run the attempt. A draining runner refuses what was
   * on its way before its drain arrived, and a passing refusal (retryable:
   * no free slot, its disk) comes back later: both requeue the job without
   * shutting this runner out of it, and after a passing refusal the runner
   * rests (RunnerIndex.rest), so that a refusal that lasts is not a loop of offers.
   */
  async onReject(frame: Reject): Promise<void> {
    // Before and after, as for a result: a change taking the job may park the attempt while this commits.
    this.jobs.attemptEnded(this.runnerId, frame.jobId, frame.attempt);
    const why = this.jobs.index.get(this.runnerId)?.status === 'DRAINING' ? 'runner_draining' : frame.retryable ? 'refused_for_now' : 'rejected';
    const done = await this.jobs.apply([{ jobId: frame.jobId, decide: requeueFree(this.runnerId, frame.attempt, why, this.jobs.deps.now(), frame.reason) }]);
    this.jobs.attemptEnded(this.runnerId, frame.jobId, frame.attempt);
    this.jobs.tails.close(frame.jobId, frame.attempt, this.runnerId);
    // Rest only after a refusal of work (a cancelled job's reject refused nothing), and only this session's entry.
    const entry = this.jobs.index.get(this.runnerId);
    if (why === 'refused_for_now' && done[0]?.after.state === 'queued' && entry?.owner === this.owner) {
      this.jobs.index.rest(this.runnerId, () => this.jobs.dispatcher.kick(entry.poolId));
    }
  }

  async onStarted(frame: Started): Promise<void> {
    // Only this runner's deadline: a started from another runner is refused by the fenced decision below.
    this.jobs.clearAcceptTimer(frame.jobId, frame.attempt, this.runnerId);
    await this.jobs.apply([{ jobId: frame.jobId, decide: started(this.runnerId, frame.attempt, this.jobs.deps.now()) }]);
  }

  /**
   * Appends in order; duplicates are acked and dropped. A gap (a frame before it was not stored: a store
   * error, which closes the session) is acked with the stored length; the runner resends from its last
   * acknowledged byte on its next session. Past the log limit, every frame is acked and dropped: the runner
   * frees its spool, and the job runs on.
   */
  async onLog(frame: LogFrame): Promise<void> {
    const { store, maxLogBytes, log } = this.jobs.deps;
    // maxLogBytes 0 (or unset): no limit.
    const result = await store.jobs.appendLog({
      jobId: frame.jobId,
      attempt: frame.attempt,
      offset: frame.offset,
      stream: frame.stream,
      data: frame.data,
    }, this.runnerId, maxLogBytes || undefined);
    const ack = (offset: number) => this.send({ type: 'log_ack', jobId: frame.jobId, attempt: frame.attempt, offset });
    if (result.kind === 'stale') return ack(frame.offset + Buffer.byteLength(frame.data, 'utf8'));
    if (result.kind === 'stored' && result.appended) this.publishLog(frame);
    if (result.kind === 'truncated') {
      if (result.appended.length > 0) {
        log.warn({ jobId: frame.jobId, attempt: frame.attempt, runnerId: this.runnerId, maxLogBytes }, 'job log reached the limit: the rest is not stored');
      }
      for (const chunk of result.appended) this.publishLog(chunk);
    }
    ack(result.length);
  }

  private publishLog(c: Pick<LogFrame, 'jobId' | 'attempt' | 'offset' | 'stream' | 'data'>): void {
    this.jobs.bus.publish(c.jobId, { kind: 'log', jobId: c.jobId, attempt: c.attempt, offset: c.offset, stream: c.stream, data: c.data });
  }

  async onResult(frame: ResultFrame): Promise<void> {
    // Before and after: a change that takes the job from this runner may commit while the result's own
    // write waits for its fsync, and park the attempt in `stopping` only then.
    this.jobs.attemptEnded(this.runnerId, frame.jobId, frame.attempt);
    let accepted = await this.jobs.finishAttempt(this.runnerId, frame);
    if (!accepted) {
      // A resend after a lost result_ack: the attempt is current and already settled.
      const job = await this.jobs.deps.store.jobs.get(frame.jobId);
      accepted = job !== null && job.attempt === frame.attempt && job.runnerId === this.runnerId && isTerminalJobState(job.state);
    }
    this.send({
      type: 'result_ack',
      jobId: frame.jobId,
      attempt: frame.attempt,
      accepted,
      ...(accepted ? {} : { reason: 'stale attempt' }),
    });
    this.jobs.attemptEnded(this.runnerId, frame.jobId, frame.attempt);
    // The runner sends an attempt's result after its last log frame, and the result's write committed after
    // theirs: every byte of the attempt that will come has been published, so its watches may end now.
    this.jobs.tails.close(frame.jobId, frame.attempt, this.runnerId);
  }
}
