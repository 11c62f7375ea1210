import type {
  Assign,
  CancelAttempt,
  CoordinatorJobMessage,
  ExecutorName,
  HeldAttempt as HeldAttemptFrame,
  RunnerConfig,
  RunnerMessage,
} from '@rbtk/protocol/runner';
import type { Executor, StopReason } from '../executors/executor.js';
import type { LeftoverContainer } from '../executors/docker-leftovers.js';
import { findAttemptProcessGroups } from '../executors/shell-orphans.js';
import type { Logger } from '../log.js';
import type { AgentMetrics } from '../metrics/agent-metrics.js';
import { sleep } from '../sleep.js';
import { GpuAllocator } from './gpu-allocator.js';
import { attemptKey, type HeldAttempt, type JobStatus } from './held-attempt.js';
import { runAttempt } from './run-attempt.js';
import { flushAttempt, resetForConnection } from './send-attempt.js';
import type { Spool } from './spool.js';

export interface JobManagerDeps {
  runnerId: string;
  config: Pick<RunnerConfig, 'max_jobs' | 'executors'>;
  executors: Partial<Record<ExecutorName, Executor>>;
  spool: Spool;
  logger: Logger;
  /** The host's usable GPUs; without it every GPU job is rejected. */
  gpus?: GpuAllocator;
  /** Counts finished attempts by result (metrics_listen). */
  metrics?: Pick<AgentMetrics, 'jobFinished'>;
  /** Why new jobs are refused now (the runner drains), or undefined. */
  refusal?: () => string | undefined;
}

const NO_GPUS = new GpuAllocator({ gpus: [], driverVersion: null, cudaVersion: null, usable: false });

export type SendFrame = (frame: RunnerMessage) => boolean;

export const RESTARTED_MESSAGE = 'rbtk-runner restarted while the job was running';
export const STOPPED_MESSAGE = 'rbtk-runner stopped before the job finished';

/**
 * The runner's job slots: takes assignments (or rejects them), runs each
 * attempt through its executor, enforces the timeout, stops attempts on cancel,
 * and keeps every attempt in the spool until the coordinator acknowledged its
 * result. Frames go out through the current session; without one they wait in
 * the spool and are resent on the next connection.
 */
export class JobManager {
  private readonly held = new Map<string, HeldAttempt>();
  private send: SendFrame | undefined;
  /** The pool's container network, from the session's welcome. */
  private poolNetwork: string | undefined;
  private stopping: Promise<void> | undefined;
  /** Aborted as the daemon stops: cleanups still retrying (a container dockerd could not remove) give up. */
  private readonly cleanupAbort = new AbortController();
  /** Cleanups of ended attempts still in progress, so a stop waits for them to give up. */
  private readonly cleanups = new Set<Promise<void>>();

  constructor(private readonly deps: JobManagerDeps) {}

  /**
   * At daemon start: attempts left in the spool without a result, and job
   * containers found by their labels, were running when the runner died:
   * nobody watches them now, so they are reported failed.
   */
  async recover(leftovers: LeftoverContainer[] = []): Promise<void> {
    const { spool, logger } = this.deps;
    for (const spooled of await spool.load()) {
      if (!spooled.result) {
        // Its processes are found by their environment, never by the spooled pgid alone: after a reboot
        // or a long stop that id may belong to another program by now.
        if (spooled.meta.executor === 'shell') findAttemptProcessGroups(spooled.meta).forEach(killGroup);
        await spooled.finish({ outcome: 'failed', exitCode: null, message: RESTARTED_MESSAGE });
        logger.warn({ jobId: spooled.meta.jobId, attempt: spooled.meta.attempt }, 'job was running when rbtk-runner stopped; reporting it failed');
      } else if (spooled.result.logBytes > spooled.logBytes) {
        logger.error(
          { jobId: spooled.meta.jobId, attempt: spooled.meta.attempt, logBytes: spooled.result.logBytes, spooled: spooled.logBytes },
          'the spool lost part of the job log (a disk error): the coordinator gets the result without the bytes it had not acknowledged',
        );
      }
      this.adopt(spooled.meta.jobId, spooled.meta.attempt).spooled = spooled;
    }
    for (const c of leftovers) {
      // An exited container the spool does not know had its result acknowledged already (its removal
      // failed, dockerd down): nothing to report. Any attempt the coordinator still counts on here, it
      // takes back when hello does not list it.
      if (!c.running || !c.jobId || !c.attempt || this.held.has(attemptKey(c.jobId, c.attempt))) continue;
      const spooled = await spool.create({ jobId: c.jobId, attempt: c.attempt, executor: 'docker', acceptedAt: new Date().toISOString() });
      await spooled.finish({ outcome: 'failed', exitCode: null, message: RESTARTED_MESSAGE });
      this.adopt(c.jobId, c.attempt).spooled = spooled;
      logger.warn({ jobId: c.jobId, attempt: c.attempt }, 'job was running when rbtk-runner stopped; reporting it failed');
    }
    for (const h of this.held.values()) this.watchSpool(h);
  }

  /**
   * hello.held: every attempt it holds, finished or not, including one whose
   * spool is still being written (not yet accepted): it takes a slot here, and
   * the coordinator must count it, or it offers that slot again at once. That
   * one is marked accepting: its accept is still to come, and if the spool
   * never gets written the coordinator's accept timeout takes the job back.
   */
  heldAttempts(): HeldAttemptFrame[] {
    return [...this.held.values()].map((h) => ({
      jobId: h.jobId,
      attempt: h.attempt,
      finished: h.state === 'finished',
      ...(h.state !== 'finished' && !h.spooled ? { accepting: true } : {}),
      ...(h.gpus ? { gpus: h.gpus } : {}),
    }));
  }

  status(): JobStatus[] {
    return [...this.held.values()].map((h) => ({ jobId: h.jobId, attempt: h.attempt, state: h.state, ...(h.gpus ? { gpus: h.gpus } : {}) }));
  }

  /** A session was welcomed: resend what the coordinator has not acknowledged, in order. */
  attach(send: SendFrame, poolNetwork?: string): void {
    this.send = send;
    this.poolNetwork = poolNetwork;
    for (const h of this.held.values()) {
      resetForConnection(h);
      this.flush(h);
    }
  }

  detach(): void {
    this.send = undefined;
  }

  handle(message: CoordinatorJobMessage): void {
    switch (message.type) {
      case 'assign':
        void this.assign(message);
        break;
      case 'cancel':
        this.cancel(message);
        break;
      case 'log_ack':
        this.held.get(attemptKey(message.jobId, message.attempt))?.spooled?.ack(message.offset);
        break;
      case 'result_ack':
        this.resultAcked(message.jobId, message.attempt, message.accepted, message.reason);
        break;
    }
  }

  /**
   * Takes no new work, lets running attempts finish for up to timeoutMs, then
   * stops the rest; waits briefly for the coordinator to acknowledge results.
   * Safe to call twice (the second call gets the first one's promise).
   */
  shutdown(timeoutMs: number, ackWaitMs = 2_000): Promise<void> {
    this.stopping ??= (async () => {
      if (this.running().length > 0) {
        this.deps.logger.info({ jobs: this.running().length, timeoutMs }, 'waiting for running jobs to finish');
        const timeout = new AbortController();
        await Promise.race([this.idle(), sleep(timeoutMs, timeout.signal)]);
        timeout.abort();
        this.stopAll(STOPPED_MESSAGE);
        await this.idle();
      }
      await this.settle(ackWaitMs);
      this.cleanupAbort.abort();
      await Promise.all(this.cleanups);
    })();
    return this.stopping;
  }

  /** Attempts not finished yet: starting, running or stopping. */
  running(): JobStatus[] {
    return this.status().filter((j) => j.state !== 'finished');
  }

  /** Stops every running attempt now; each is reported cancelled with `message`. */
  stopAll(message: string): void {
    for (const h of this.held.values()) this.stop(h, { outcome: 'cancelled', message });
  }

  /** Waits up to ackWaitMs for the coordinator to acknowledge the results, and for the spool writes. */
  async settle(ackWaitMs = 2_000): Promise<void> {
    const deadline = Date.now() + ackWaitMs;
    while (this.send && this.held.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await Promise.all([...this.held.values()].map((h) => h.spooled?.idle()));
  }

  /** Resolves when no attempt is running (tests, drain --wait, shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const busy = [...this.held.values()].filter((h) => h.state !== 'finished');
      if (busy.length === 0) return;
      // An attempt being accepted has no `done` until its spool exists: look again shortly.
      await Promise.all(busy.map((h) => h.done ?? new Promise((r) => setTimeout(r, 10))));
    }
  }

  private async assign(message: Assign): Promise<void> {
    const { logger, config, executors } = this.deps;
    const { jobId, attempt } = message;
    const key = attemptKey(jobId, attempt);
    const known = this.held.get(key);
    if (known) {
      // The same assignment again (a resend after a reconnect): the answer has not changed.
      if (known.state !== 'finished' && known.spooled) this.sendFrame({ type: 'accept', jobId, attempt });
      return;
    }
    const type = message.spec.executor.type;
    const busy = [...this.held.values()].filter((h) => h.state !== 'finished').length;
    // Stopping, draining, busy: passing refusals (retryable), so the coordinator may offer the job here again.
    // Only what this runner can never do shuts it out of the job.
    let refusal = this.stopping ? 'rbtk-runner is stopping' : this.deps.refusal?.();
    let retryable = true;
    if (!refusal && (!config.executors.includes(type) || !executors[type])) {
      refusal = `executor "${type}" is not enabled on this runner (executors: ${config.executors.join(', ')})`;
      retryable = false;
    } else if (!refusal && busy >= config.max_jobs) refusal = `no free slot: ${busy} of ${config.max_jobs} jobs running`;
    // GPUs are claimed with the slot, before any await: two assignments never get the same GPU.
    const gpusNeeded = message.spec.requires.gpus ?? 0;
    let gpus: string[] | undefined;
    if (!refusal && gpusNeeded > 0) {
      if (type !== 'docker') {
        refusal = `GPU jobs run only in the docker executor, not ${type}`;
        retryable = false;
      } else {
        const claim = (this.deps.gpus ?? NO_GPUS).claim(key, gpusNeeded, message.gpuIds);
        if (claim.ok) gpus = claim.uuids;
        else ({ reason: refusal, retryable = false } = claim);
      }
    }
    if (refusal) {
      logger.info({ jobId, attempt, reason: refusal, retryable }, 'job rejected');
      this.sendFrame({ type: 'reject', jobId, attempt, reason: refusal, retryable });
      return;
    }

    // The slot is taken now, before any await, so two assignments cannot both get the last one.
    const h = this.adopt(jobId, attempt);
    Object.assign(h, { state: 'starting', acceptSent: false, startedSent: false, gpus });
    const receivedAt = performance.now();
    const refuse = (reason: string, retryable = true): void => {
      this.held.delete(key);
      this.releaseGpus(h, key);
      logger.error({ jobId, attempt, reason, retryable }, 'job rejected');
      this.sendFrame({ type: 'reject', jobId, attempt, reason, retryable });
    };
    const resources = { gpuIds: gpus, ...(this.poolNetwork ? { network: this.poolNetwork } : {}) };
    // What the executor will never run here (an air-gapped runner's open network) is a reject, not a
    // failed result: the job's retries are not spent on this runner, and others may take it.
    let unfit: { reason: string; retryable: boolean } | undefined;
    try {
      unfit = await executors[type]!.refusal?.(message.spec.executor, resources);
    } catch (err) {
      unfit = { reason: `cannot check the job: ${(err as Error).message}`, retryable: true };
    }
    if (unfit) return refuse(unfit.reason, unfit.retryable);
    try {
      h.spooled = await this.deps.spool.create({ jobId, attempt, executor: type, acceptedAt: new Date().toISOString() });
    } catch (err) {
      return refuse(`cannot write the spool: ${(err as Error).message}`);
    }
    // Measured from the assign's arrival, after the coordinator armed its timer: past this window the
    // coordinator has given the job to another runner (or will on the next turn), so do not start it.
    const tookMs = performance.now() - receivedAt;
    if (tookMs > message.acceptWithinMs) {
      void h.spooled.remove().catch(() => undefined); // a leftover is reported failed at the next start, as stale
      return refuse(`too late to accept: writing the spool took ${Math.round(tookMs)} ms of the ${message.acceptWithinMs} ms given`);
    }
    this.watchSpool(h);
    h.acceptSent = this.sendFrame({ type: 'accept', jobId, attempt });
    logger.info({ jobId, attempt, executor: type, timeoutMs: message.timeoutMs, ...(gpus ? { gpus } : {}) }, 'job accepted');
    h.done = runAttempt(
      {
        runnerId: this.deps.runnerId,
        executor: executors[type]!,
        resources,
        logger,
        onStarted: () => this.started(h),
        stop: (reason) => this.stop(h, reason),
      },
      h,
      message,
    ).finally(() => {
      this.releaseAfterCleanup(h, key);
      if (h.spooled?.result) this.deps.metrics?.jobFinished(h.spooled.result.outcome);
    });
  }

  /**
   * The attempt ended: its GPUs are free once nothing of it is left (its
   * container removed, which may wait for dockerd to come back). Until then,
   * and for good when that cannot be confirmed, they stay held: two jobs must
   * never share a GPU; the next start's sweep removes the container.
   */
  private releaseAfterCleanup(h: HeldAttempt, key: string): void {
    const cleanup = h.execution?.cleanup?.(this.cleanupAbort.signal);
    if (!cleanup) return this.releaseGpus(h, key);
    const pending: Promise<void> = cleanup
      .catch(() => false)
      .then((gone) => {
        if (gone) this.releaseGpus(h, key);
        else if (h.gpus) {
          this.deps.logger.error(
            { jobId: h.jobId, attempt: h.attempt, gpus: h.gpus },
            'the job container could not be removed: its GPUs stay reserved until rbtk-runner restarts',
          );
        }
      })
      .finally(() => this.cleanups.delete(pending));
    this.cleanups.add(pending);
  }

  /** The attempt ended (or never started): its GPUs are free for the next one. */
  private releaseGpus(h: HeldAttempt, key: string): void {
    if (!h.gpus) return;
    this.deps.gpus?.release(key);
    h.gpus = undefined;
  }

  private started(h: HeldAttempt): void {
    h.startedSent = this.sendFrame({ type: 'started', jobId: h.jobId, attempt: h.attempt });
  }

  private cancel(message: CancelAttempt): void {
    const h = this.held.get(attemptKey(message.jobId, message.attempt));
    if (!h) {
      // The coordinator keeps a slot for the attempt until it hears that it ended: say it never ran here.
      this.deps.logger.debug({ jobId: message.jobId, attempt: message.attempt, reason: message.reason }, 'cancel for an attempt not held here');
      this.sendFrame({ type: 'reject', jobId: message.jobId, attempt: message.attempt, reason: 'not held: nothing to stop', retryable: true });
      return;
    }
    // Finished: its result is on the way (or resent on the next connection), which frees the slot.
    if (h.state === 'finished') return;
    const reason: StopReason =
      message.reason === 'timed_out'
        ? { outcome: 'timed_out', message: 'timed out: the coordinator\'s deadline passed' }
        : { outcome: 'cancelled', message: message.reason };
    this.stop(h, reason);
  }

  private stop(h: HeldAttempt, reason: StopReason): void {
    if (h.state === 'finished') return;
    this.deps.logger.info({ jobId: h.jobId, attempt: h.attempt, outcome: reason.outcome, reason: reason.message }, 'stopping job');
    h.state = 'stopping';
    h.stopReason ??= reason;
    h.execution?.stop(reason);
  }

  private resultAcked(jobId: string, attempt: number, accepted: boolean, reason: string | undefined): void {
    const key = attemptKey(jobId, attempt);
    const h = this.held.get(key);
    if (!h?.spooled?.result) return;
    if (!accepted) this.deps.logger.warn({ jobId, attempt, reason }, 'the coordinator refused the result');
    else this.deps.logger.debug({ jobId, attempt }, 'result acknowledged');
    this.held.delete(key);
    // A failed removal (a rename refused: ENOTEMPTY, EIO) must not crash the daemon: the next start
    // finds the attempt with its result and sends it again, which the coordinator acknowledges as a duplicate.
    h.spooled.remove().catch((err: unknown) =>
      this.deps.logger.error({ jobId, attempt, err: (err as Error).message }, 'cannot remove an acknowledged attempt from the spool'),
    );
  }

  private adopt(jobId: string, attempt: number): HeldAttempt {
    const h: HeldAttempt = {
      jobId,
      attempt,
      state: 'finished',
      hasStarted: false,
      acceptSent: true,
      startedSent: true,
      sentUpTo: 0,
      resultSent: false,
    };
    this.held.set(attemptKey(jobId, attempt), h);
    return h;
  }

  /** Log bytes and the result are sent once written (on disk, or kept in memory after a failed write). */
  private watchSpool(h: HeldAttempt): void {
    resetForConnection(h);
    const spooled = h.spooled!;
    spooled.onWritten = () => this.flush(h);
    spooled.onWriteError = (err) =>
      this.deps.logger.error(
        { jobId: h.jobId, attempt: h.attempt, err: err.message },
        'could not write the job log to the spool: sending it from memory (a restart before the coordinator has it loses it)',
      );
  }

  private flush(h: HeldAttempt): void {
    if (this.send) flushAttempt(h, this.send);
  }

  private sendFrame(frame: RunnerMessage): boolean {
    return this.send?.(frame) ?? false;
  }
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // ESRCH: nothing left of it.
  }
}
