import { coerceError } from '@rbtk/protocol';
import type { Logger } from '../log.js';
import type { JobDecision, JobRecord, JobTransition } from '../store/job-rows.js';
import type { Store } from '../store/store.js';
import { assignTo } from './decisions.js';
import type { IndexedRunner, RunnerIndex } from './runner-index.js';

export interface DispatchDeps {
  store: Store;
  index: RunnerIndex;
  log: Logger;
  now: () => number;
  /** Commits decisions (one transaction) and runs the after-commit effects. */
  apply(items: { jobId: string; decide: JobDecision }[]): Promise<JobTransition[]>;
  /** Called for each committed assignment: push `assign`, start the accept timer. */
  assigned(job: JobRecord, runner: IndexedRunner): void;
}

/** Most queued jobs read per round; more rounds follow while slots and jobs remain. */
const BATCH = 256;
/** Fewest read per round, so jobs no free runner fits are skipped in few reads. */
const MIN_READ = 16;
/** Queued jobs a handoff looks at: nearly always the first fits, and it runs once per result. */
const HANDOFF_READ = 4;
/** A pass that failed (the store refused: a full disk) runs again this much later. */
const RETRY_FAILED_PASS_MS = 1_000;

/**
 * Event-driven dispatch, one pass at a time per pool. kick() is called on
 * hello, a freed slot and resume, queued() on a queued submit and a requeue; kicks that arrive during a
 * pass coalesce into one more pass, so a burst of submits becomes a few
 * batched assignment transactions rather than one per job. Nothing polls.
 *
 * A pass that leaves no job queued marks its pool drained; until a job is
 * queued again (queued()), a submit may take a free slot itself (claim()) and
 * commit its assignment with its insert, overtaking nobody.
 */
export class Dispatcher {
  private readonly running = new Set<number>();
  private readonly again = new Set<number>();
  private readonly scheduled = new Set<number>();
  private readonly drained = new Set<number>();
  /** Paused or draining pools: their jobs queue, none starts. */
  private readonly held = new Set<number>();
  private stopped = false;

  constructor(private readonly deps: DispatchDeps) {}

  kick(poolId: number): void {
    // Nothing queued: a freed slot or a new runner waits for the next submit's claim().
    if (this.stopped || this.drained.has(poolId) || this.held.has(poolId)) return;
    if (this.running.has(poolId)) {
      this.again.add(poolId);
      return;
    }
    if (this.scheduled.has(poolId)) return;
    this.scheduled.add(poolId);
    // Defer to the end of this turn: the submits and frames of one I/O turn share a pass.
    setImmediate(() => {
      this.scheduled.delete(poolId);
      void this.run(poolId);
    });
  }

  /** A job of the pool became queued (submitted without a slot, requeued): it waits its turn. */
  queued(poolId: number): void {
    this.drained.delete(poolId);
    this.kick(poolId);
  }

  /**
   * A runner for a job being submitted, reserved, when the pool has no queued
   * job and no pass pending (which would be first in line), else undefined.
   * The caller commits the assignment or gives the slot back (index.unreserve).
   */
  claim(poolId: number, job: Pick<JobRecord, 'id' | 'spec' | 'excluded' | 'attempt'>): IndexedRunner | undefined {
    if (this.stopped || this.held.has(poolId) || !this.drained.has(poolId) || this.running.has(poolId) || this.scheduled.has(poolId)) {
      return undefined;
    }
    const runner = this.deps.index.pick(poolId, job);
    return runner && this.deps.index.reserve(runner, job) ? runner : undefined;
  }

  /**
   * The next queued job for a runner whose result for `freeing` is arriving,
   * reserved on it now: the caller commits its assignment with the result, so
   * the slot goes straight to the next job instead of waiting, empty, for
   * that commit and then a dispatch pass of its own. None when the pool has
   * nothing queued or is held, or no job near the queue's head fits.
   */
  async handoff(runner: IndexedRunner, freeing: string): Promise<JobRecord | undefined> {
    const poolId = runner.poolId;
    if (this.stopped || this.held.has(poolId) || this.drained.has(poolId)) return undefined;
    for (const job of await this.deps.store.jobs.listQueued(poolId, 0, HANDOFF_READ)) {
      // A pass may have reserved it for another runner meanwhile: the later commit finds it assigned and lets go.
      if (this.deps.index.fitsOnceFreed(runner, job, freeing) && this.deps.index.reserve(runner, job)) return job;
    }
    return undefined;
  }

  /** Pauses (held) or resumes dispatch for the pool; resuming dispatches what queued meanwhile. */
  hold(poolId: number, held: boolean): void {
    if (!held) {
      if (this.held.delete(poolId)) this.kick(poolId);
      return;
    }
    this.held.add(poolId);
  }

  stop(): void {
    this.stopped = true;
  }

  private async run(poolId: number): Promise<void> {
    if (this.running.has(poolId) || this.stopped) return;
    this.running.add(poolId);
    try {
      do {
        this.again.delete(poolId);
        await this.pass(poolId);
      } while (this.again.has(poolId) && !this.stopped);
    } catch (err) {
      // Nothing polls: without a pass later, its queued jobs would wait for the next event in the pool.
      this.deps.log.error({ err: coerceError(err), poolId, retryInMs: RETRY_FAILED_PASS_MS }, 'dispatch pass failed');
      setTimeout(() => this.kick(poolId), RETRY_FAILED_PASS_MS).unref();
    } finally {
      this.running.delete(poolId);
    }
  }

  /** Matches the pool's queued jobs, FIFO, to free slots, and commits each round in one transaction. */
  private async pass(poolId: number): Promise<void> {
    const { store, index } = this.deps;
    this.drained.delete(poolId);
    let afterSeq = 0;
    let left = false; // a job read in this pass stays queued
    for (let free = index.freeSlots(poolId); free > 0 && !this.stopped && !this.held.has(poolId); free = index.freeSlots(poolId)) {
      // Read about as many as there are slots: a freed slot must not cost a read of the whole backlog.
      const limit = Math.min(BATCH, Math.max(free, MIN_READ));
      const queued = await store.jobs.listQueued(poolId, afterSeq, limit);
      afterSeq = queued[queued.length - 1]?.seq ?? afterSeq;
      const now = this.deps.now();
      const picks: { job: JobRecord; runner: IndexedRunner }[] = [];
      for (const job of queued) {
        const runner = index.pick(poolId, job);
        if (!runner) continue; // no runner fits it right now: later jobs may still go (no head-of-line blocking)
        if (!index.reserve(runner, job)) continue; // a handoff has it on the way to that runner
        picks.push({ job, runner });
        if (index.freeSlots(poolId) === 0) break;
      }
      if (picks.length > 0) await this.commit(picks, now);
      left ||= picks.length < queued.length;
      if (queued.length < limit) {
        if (!left) this.drained.add(poolId);
        return;
      }
    }
  }

  /**
   * Commits the reserved picks' assignments, after the `along` changes and in
   * the same transaction, then pushes each assignment that applied; a pick
   * whose job moved on meanwhile (or whose own decision declined) gives its
   * slot back. A pick's `decide` replaces the plain assignment.
   */
  async commit(
    picks: { job: JobRecord; runner: IndexedRunner; decide?: JobDecision }[],
    now: number,
    along: { jobId: string; decide: JobDecision }[] = [],
  ): Promise<JobTransition[]> {
    let done: JobTransition[];
    try {
      done = await this.deps.apply([
        ...along,
        ...picks.map(({ job, runner, decide }) => ({ jobId: job.id, decide: decide ?? assignTo(runner.id, now) })),
      ]);
    } catch (err) {
      for (const { job, runner } of picks) this.deps.index.unreserve(runner, job.id);
      throw err;
    }
    const committed = new Map(done.map((t) => [t.after.id, t.after]));
    for (const { job, runner } of picks) {
      const after = committed.get(job.id);
      if (after) {
        this.deps.assigned(after, runner);
        continue;
      }
      // Cancelled (or otherwise moved) between our read and the commit: give the slot back, and fill it.
      // The pass that read the job may have left others queued for want of this very slot.
      this.deps.index.unreserve(runner, job.id);
      this.kick(runner.poolId);
    }
    return done;
  }
}
