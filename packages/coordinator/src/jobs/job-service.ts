import {
  type CancelReason,
  type ResultFrame,
  coerceError,
  ErrorCode,
  isTerminalJobState,
  type JobSpec,
  parseDuration,
  type PoolStatus,
  RbtkError,
  type RunnerStatus,
} from '@rbtk/protocol';
import { timeOrderedId } from '../auth/secrets.js';
import type { Logger } from '../log.js';
import type { CoordinatorMetrics } from '../metrics/coordinator-metrics.js';
import type { JobDecision, JobRecord, JobTransition } from '../store/job-rows.js';
import type { SubmitResult } from '../store/job-store.js';
import type { PoolRecord } from '../store/rows.js';
import type { Store } from '../store/store.js';
import { AcceptTimers } from './accept-timers.js';
import { assignTo, finish, isInFlight, requestCancel, requeueFree, runnerGone, timedOut } from './decisions.js';
import { Dispatcher } from './dispatcher.js';
import { repeatOf } from './idempotency.js';
import { JobBus } from './job-bus.js';
import { LOG_TAIL_MS, LogTails } from './log-tails.js';
import { RoutingCache, routeJob } from './routing.js';
import { type IndexedRunner, RunnerIndex } from './runner-index.js';

export interface JobServiceDeps {
  store: Store;
  log: Logger;
  now: () => number;
  /** How long a runner has to accept an assignment. */
  acceptTimeoutMs: number;
  /** The most log bytes stored per attempt (the rest is acknowledged and dropped); 0: no limit. */
  maxLogBytes?: number;
  /** Told of every committed change (dispatch latency, queue wait). */
  metrics?: CoordinatorMetrics;
  /** How long watches wait for the rest of an attempt's log after the coordinator ended it; default LOG_TAIL_MS. */
  logTailMs?: number;
}

/** A decision, plus the cancel frame to send the job's previous runner if the change took the attempt away from it. */
export interface JobChangeItem {
  jobId: string;
  decide: JobDecision;
  cancelRunner?: CancelReason;
}

/**
 * Hosted pools' side of jobs (their members are runners with max_jobs 1): the
 * claim is the assignment itself, so the member's state follows the job's.
 * Called synchronously, after the commit and before any further dispatch.
 */
export interface MemberEvents {
  /** At submit, before the insert: may refuse (on-empty fail) or cold-start a member (overflow). */
  admit(pool: PoolRecord, claimed: boolean): void;
  /** The runner said hello (joined the index). */
  hello(runnerId: string): void;
  /** A job was assigned to the runner. */
  claimed(runnerId: string, job: JobRecord): void;
  /** The job left the runner (finished, requeued, cancelled). */
  released(runnerId: string, job: JobRecord): void;
  /** An attempt the runner was told to stop has ended there: its slot is free (the member may be let go now). */
  slotFreed(runnerId: string): void;
  /** Whether the runner is a hosted pool's member: its slot is not handed on (its pool decides what it does next). */
  isMember(runnerId: string): boolean;
}

/** How long past its timeout a running job may stay silent before the coordinator marks it timed_out. */
export const TIMEOUT_BACKSTOP_MS = 30_000;

/**
 * Jobs on this coordinator: submit, cancel, requeue and the after-commit
 * effects of every state change (free the slot, dispatch, tell watchers, stop
 * a stale attempt on its runner). Runner frames are handled in runner-jobs.ts.
 */
export class JobService {
  readonly bus: JobBus;
  readonly index = new RunnerIndex();
  readonly dispatcher: Dispatcher;
  /** Attempts this coordinator ended whose runner may still send their last log bytes. */
  readonly tails: LogTails;
  private readonly routing = new RoutingCache();
  private readonly acceptTimers: AcceptTimers;
  private readonly stopping = new AbortController();
  /** Set once at start when hosted pools run on this coordinator. */
  members?: MemberEvents;

  /** Aborted by stop(): ends the retries of writes the store refused (revoke.ts). */
  get stopped(): AbortSignal {
    return this.stopping.signal;
  }

  constructor(readonly deps: JobServiceDeps) {
    this.bus = new JobBus((err, jobId, event) =>
      deps.log.error({ err: coerceError(err), jobId, event: event.kind }, 'job watcher failed on an event: skipped it'),
    );
    this.tails = new LogTails(deps.logTailMs ?? LOG_TAIL_MS, (jobId, attempt) => this.bus.publish(jobId, { kind: 'tail_end', jobId, attempt }));
    this.acceptTimers = new AcceptTimers(deps.acceptTimeoutMs, (jobId, attempt, runnerId) =>
      this.acceptTimedOut(jobId, attempt, runnerId),
    );
    this.dispatcher = new Dispatcher({
      store: deps.store,
      index: this.index,
      log: deps.log,
      now: deps.now,
      apply: (items) => this.apply(items),
      assigned: (job, runner) => this.assigned(job, runner),
    });
  }

  /** Commits the changes in one transaction, then runs their effects in commit order. */
  async apply(items: JobChangeItem[]): Promise<JobTransition[]> {
    const done = await this.deps.store.jobs.transition(items, this.deps.now());
    const cancels = new Map(items.filter((i) => i.cancelRunner).map((i) => [i.jobId, i.cancelRunner!]));
    for (const t of done) this.afterChange(t, cancels.get(t.after.id));
    return done;
  }

  private afterChange({ before, after }: JobTransition, cancelRunner?: CancelReason): void {
    this.deps.metrics?.jobChanged(before, after);
    const leftRunner =
      before.runnerId !== null && isInFlight(before.state) && (!isInFlight(after.state) || after.attempt !== before.attempt);
    if (leftRunner) {
      this.acceptTimers.clear(after.id);
      this.members?.released(before.runnerId!, after);
      if (cancelRunner) {
        // The runner may still be running it: its slot frees when the runner says the attempt ended.
        this.index.releaseStopping(before.runnerId!, after.id, before.attempt);
        const runner = this.index.get(before.runnerId!);
        // Ended here, not by its result: a connected runner may still flush the attempt's log, which the store
        // takes (same attempt, same runner). Opened before the terminal state is published, so watches wait for it.
        if (runner && isTerminalJobState(after.state)) this.tails.open(after.id, before.attempt, runner.id);
        runner?.send({ type: 'cancel', jobId: after.id, attempt: before.attempt, reason: cancelRunner });
      } else {
        this.index.release(before.runnerId!, after.id, before.attempt);
      }
      this.dispatcher.kick(after.poolId);
    }
    if (after.runnerId !== null && isInFlight(after.state) && (!isInFlight(before.state) || before.attempt !== after.attempt)) {
      this.members?.claimed(after.runnerId, after);
    }
    if (after.state === 'queued' && before.state !== 'queued') this.dispatcher.queued(after.poolId);
    if (after.version !== before.version) this.bus.publish(after.id, { kind: 'job', job: after });
  }

  private assigned(job: JobRecord, runner: IndexedRunner): void {
    this.acceptTimers.start(job.id, job.attempt, runner.id);
    this.index.assigned(runner, job.id, job.attempt);
    const gpuIds = this.index.gpusOf(runner, job.id);
    runner.send({
      type: 'assign',
      jobId: job.id,
      attempt: job.attempt,
      spec: job.spec,
      timeoutMs: job.timeoutMs,
      acceptWithinMs: this.deps.acceptTimeoutMs,
      ...(gpuIds.length > 0 ? { gpuIds: [...gpuIds] } : {}),
    });
  }

  private acceptTimedOut(jobId: string, attempt: number, runnerId: string): void {
    // Armed again first, as the backstop of this requeue: the requeue's own effects clear it, and so does an
    // accept that arrives meanwhile; a requeue the store refused leaves it, and it is tried again then.
    this.acceptTimers.start(jobId, attempt, runnerId);
    this.apply([{ jobId, decide: requeueFree(runnerId, attempt, 'accept_timeout', this.deps.now()), cancelRunner: 'stale' }]).then(
      (done) => {
        if (done.length > 0) this.deps.log.warn({ jobId, attempt, runnerId }, 'no accept in time: requeued');
        else this.acceptTimers.clear(jobId, attempt, runnerId); // it had moved on: nothing to take back
      },
      (err: unknown) => this.deps.log.error({ err: coerceError(err), jobId }, 'accept timeout requeue failed: trying again after another accept timeout'),
    );
  }

  /**
   * A runner's result for an attempt, committed together with the assignment
   * of the next queued job to the slot it frees (Dispatcher.handoff): one
   * commit instead of two in a row, and the slot never sits idle between
   * them. The assignment applies only if the result does. True when the
   * result was taken.
   */
  async finishAttempt(runnerId: string, frame: ResultFrame): Promise<boolean> {
    const now = this.deps.now();
    const runner = this.index.get(runnerId);
    const next = runner && !this.members?.isMember(runnerId) ? await this.dispatcher.handoff(runner, frame.jobId) : undefined;
    const decideFinish = finish(runnerId, frame.attempt, frame, now);
    let finished = false;
    const items: JobChangeItem[] = [
      {
        jobId: frame.jobId,
        decide: (j) => {
          const change = decideFinish(j);
          finished = change !== null;
          return change;
        },
      },
    ];
    const done = next
      ? await this.dispatcher.commit([{ job: next, runner: runner!, decide: (j) => (finished ? assignTo(runnerId, now)(j) : null) }], now, items)
      : await this.apply(items);
    return done.some((t) => t.after.id === frame.jobId);
  }

  /**
   * The runner says the attempt ended (its result) or is not running there (a
   * reject): a slot held by an attempt it was told to stop is free again.
   */
  attemptEnded(runnerId: string, jobId: string, attempt: number): void {
    const poolId = this.index.get(runnerId)?.poolId;
    if (!this.index.ended(runnerId, jobId, attempt) || poolId === undefined) return;
    this.dispatcher.kick(poolId);
    this.members?.slotFreed(runnerId);
  }

  /**
   * The runner holds the attempt but has not accepted it yet (hello's
   * accepting): wait for its accept, from the deadline set at the assign, or
   * from now when that is gone (a restarted coordinator).
   */
  awaitAccept(jobId: string, attempt: number, runnerId: string): void {
    this.acceptTimers.keep(jobId, attempt, runnerId);
  }

  /** The runner took the attempt (accept, started, or held at hello): stop waiting for it, if it is that runner's. */
  clearAcceptTimer(jobId: string, attempt: number, runnerId: string): void {
    this.acceptTimers.clear(jobId, attempt, runnerId);
  }

  /**
   * Inserts the job; when its pool has nothing queued and a runner is free,
   * assigns it in the same commit (one fsync, no dispatch pass).
   */
  async submit(project: string, spec: JobSpec): Promise<SubmitResult> {
    // A repeat is answered with its job before any routing: the pool may have changed since (its runners
    // gone, a hosted pool without a free member), and a repeat must not claim, wake or count a member.
    // A repeat in the same commit as its first submit is caught by the insert (store.jobs.submit).
    // Either way a repeat with another spec is refused (repeatOf: 409 idempotency_conflict).
    if (spec.idempotencyKey !== undefined) {
      const existing = await this.deps.store.jobs.getByIdempotencyKey(project, spec.idempotencyKey);
      if (existing) return { job: repeatOf(existing, spec), created: false };
    }
    const pool = await routeJob(this.deps.store, this.routing, project, spec);
    const now = this.deps.now();
    const id = timeOrderedId(now);
    const runner = this.dispatcher.claim(pool.id, { id, spec, excluded: [], attempt: 0 });
    if (pool.hostedSpec) this.members?.admit(pool, runner !== undefined);
    let result: SubmitResult;
    try {
      result = await this.deps.store.jobs.submit(
        { id, project, poolId: pool.id, poolName: pool.name, spec, timeoutMs: parseDuration(spec.timeout), createdAt: now },
        runner && assignTo(runner.id, now),
      );
    } catch (err) {
      if (runner) this.giveBack(runner, id);
      throw err;
    }
    if (result.assigned) {
      this.afterChange(result.assigned);
      this.assigned(result.assigned.after, runner!);
      return result;
    }
    if (runner) this.giveBack(runner, id);
    if (!result.created) return { job: repeatOf(result.job, spec), created: false };
    this.dispatcher.queued(pool.id);
    return result;
  }

  /** A slot claimed for a submit that did not take it (a failed insert, an idempotent repeat): free, and filled. */
  private giveBack(runner: IndexedRunner, jobId: string): void {
    this.index.unreserve(runner, jobId);
    this.dispatcher.kick(runner.poolId);
  }

  /** A pool was paused, drained or resumed: its queued jobs wait, or go now. */
  poolStatusChanged(poolId: number, status: PoolStatus): void {
    this.dispatcher.hold(poolId, status !== 'active');
  }

  /** An operator's drain or resume changed a runner's status: no new work while DRAINING, slots to fill when ONLINE. */
  runnerStatusChanged(runnerId: string, status: RunnerStatus): void {
    const entry = this.index.get(runnerId);
    if (!entry || entry.status === status) return;
    this.index.setStatus(entry, status);
    if (status === 'ONLINE') this.dispatcher.kick(entry.poolId);
  }

  /** Pools or registered runners changed (create, delete, register, hello, revoke, reap): route afresh. */
  routingChanged(): void {
    this.routing.invalidate();
  }

  /** A job of the project, or 404 (ids do not leak across projects). */
  async find(project: string, id: string): Promise<JobRecord> {
    const job = await this.deps.store.jobs.get(id);
    if (!job || job.project !== project) throw new RbtkError(ErrorCode.NotFound, `job "${id}" not found in project "${project}"`);
    return job;
  }

  /**
   * Queued: cancelled at once. Assigned/running: the runner is told to stop and
   * the job is cancelled when its result arrives, or at once if the runner is
   * OFFLINE (or gone). Terminal: 409 job_finished.
   */
  async cancel(project: string, id: string): Promise<JobRecord> {
    const job = await this.find(project, id);
    if (!isInFlight(job.state) && job.state !== 'queued') {
      throw new RbtkError(ErrorCode.JobFinished, `job is already ${job.state}`);
    }
    let atOnce = false;
    if (isInFlight(job.state) && job.runnerId !== null) {
      const runner = await this.deps.store.runners.get(job.runnerId);
      atOnce = runner === null || runner.status === 'OFFLINE';
    }
    const [done] = await this.apply([{ jobId: id, decide: requestCancel(this.deps.now(), atOnce), cancelRunner: 'cancelled' }]);
    const after = done?.after ?? (await this.find(project, id));
    if (done && isInFlight(after.state) && after.runnerId !== null) {
      this.index.get(after.runnerId)?.send({ type: 'cancel', jobId: id, attempt: after.attempt, reason: 'cancelled' });
    }
    if (!done && !isInFlight(after.state) && after.state !== 'queued') {
      throw new RbtkError(ErrorCode.JobFinished, `job is already ${after.state}`);
    }
    return after;
  }

  /** Requeues (or fails) every attempt the runner holds: it went OFFLINE or was revoked. */
  async runnerGone(runnerId: string, reason: 'runner_lost' | 'runner_revoked'): Promise<JobTransition[]> {
    const jobs = await this.deps.store.jobs.inFlight(runnerId);
    const now = this.deps.now();
    const done = await this.apply(
      jobs.map((j) => ({ jobId: j.id, decide: runnerGone(runnerId, j.attempt, reason, now), cancelRunner: 'stale' as const })),
    );
    for (const t of done) this.deps.log.warn({ jobId: t.after.id, runnerId, reason, state: t.after.state }, 'job attempt lost');
    return done;
  }

  /** Liveness marked the runner OFFLINE: no new work for it, and its attempts are requeued. */
  async runnerOffline(runnerId: string): Promise<void> {
    // It may have said hello again since liveness marked it (a stopped hosted member started for a
    // job reconnects just then): its attempts are the new session's, not lost.
    const runner = await this.deps.store.runners.get(runnerId);
    if (runner && runner.status !== 'OFFLINE') return;
    const entry = this.index.get(runnerId);
    if (entry) this.index.setStatus(entry, 'OFFLINE');
    await this.runnerGone(runnerId, 'runner_lost');
  }

  /** The timeout backstop: jobs silent 30 s past their timeout (running, or accepted and never started) become timed_out. */
  async expireOverdue(graceMs = TIMEOUT_BACKSTOP_MS): Promise<JobTransition[]> {
    const now = this.deps.now();
    const overdue = await this.deps.store.jobs.overdue(now, graceMs);
    return this.apply(overdue.map((j) => ({ jobId: j.id, decide: timedOut(j.attempt, graceMs, now), cancelRunner: 'timed_out' as const })));
  }

  /**
   * After a (re)start: attempts on runners that are gone or OFFLINE are
   * requeued as runner_lost, and every pool with queued jobs is dispatched
   * as its runners come back.
   */
  async resume(): Promise<void> {
    const now = this.deps.now();
    for (const poolId of await this.deps.store.pools.heldIds()) this.dispatcher.hold(poolId, true);
    const orphans = await this.deps.store.jobs.orphaned();
    await this.apply(
      orphans.map((j) => ({ jobId: j.id, decide: runnerGone(j.runnerId ?? '', j.attempt, 'runner_lost', now) })),
    );
    for (const poolId of await this.deps.store.jobs.poolsWithQueued()) this.dispatcher.kick(poolId);
  }

  stop(): void {
    this.stopping.abort();
    this.dispatcher.stop();
    this.acceptTimers.stop();
    this.tails.stop();
  }
}
