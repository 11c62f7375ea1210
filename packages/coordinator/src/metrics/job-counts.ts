import type { JobState } from '@rbtk/protocol';
import type { FinishedCounts, PoolCountRow, StatsStore } from '../store/stats-store.js';

/** How old the counts a scrape gets may be (--metrics-refresh): scrapes in between cost nothing. */
export const DEFAULT_JOB_COUNTS_MAX_AGE_MS = 10_000;

type Counts = Map<number, Map<JobState, number>>;

/** One refresh's answer: the gauge's rows, and each pool's counts by its id (states without jobs absent). */
interface Snapshot {
  at: number;
  rows: PoolCountRow<JobState>[];
  byPool: Map<number, Partial<Record<JobState, number>>>;
}

/**
 * The per-pool job counts of /metrics (rbtk_jobs), without counting every job
 * ever stored on each scrape: that grew with the history and, SQLite being
 * synchronous, held the event loop (heartbeats, dispatch) for the whole walk.
 *
 * - Finished jobs (succeeded, failed, cancelled, timed_out) are counted once,
 *   at the first scrape, then kept up to date from the job_events rows added
 *   since: a terminal state is final, so each finished job is one terminal
 *   event, counted once.
 * - Unfinished jobs (queued, assigned, running) are counted from the
 *   (pool_id, state) index at each refresh: they are the live work, not the
 *   history.
 *
 * A refresh thus costs O(pools + unfinished jobs + events since the last
 * one). Counts are reused for `maxAgeMs` (a reader may ask for fresher ones:
 * GET /v1/stats asks for 0); concurrent readers share one refresh. Jobs are
 * deleted only with their pool, so a pool gone (or the event log shorter than
 * before: deleted rows at its end have their ids reused) means counting the
 * finished jobs afresh.
 */
export class JobCounts {
  private finished: Counts | null = null;
  /** The job_events id that `finished` counts up to. */
  private upTo = 0;
  private cached: Snapshot | null = null;
  private refreshing: Promise<Snapshot> | null = null;

  constructor(
    private readonly stats: Pick<StatsStore, 'unfinishedJobCounts' | 'finishedJobCounts' | 'finishedJobCountsAfter'>,
    private readonly now: () => number,
    private readonly maxAgeMs = DEFAULT_JOB_COUNTS_MAX_AGE_MS,
  ) {
    if (!Number.isInteger(maxAgeMs) || maxAgeMs < 0) throw new RangeError(`maxAgeMs must be a whole number >= 0, got ${maxAgeMs}`);
  }

  /** Every pool with its jobs per state (absent states are 0), at most maxAgeMs old. */
  async read(): Promise<PoolCountRow<JobState>[]> {
    return (await this.snapshot(this.maxAgeMs)).rows;
  }

  /** The pool's jobs per state (states without jobs absent), brought up to date now (stats are exact); readers at once share one refresh. */
  async ofPool(poolId: number): Promise<Partial<Record<JobState, number>>> {
    return (await this.snapshot(0)).byPool.get(poolId) ?? {};
  }

  private snapshot(maxAgeMs: number): Promise<Snapshot> {
    if (this.cached && this.now() - this.cached.at < maxAgeMs) return Promise.resolve(this.cached);
    return (this.refreshing ??= this.refresh().finally(() => (this.refreshing = null)));
  }

  private async refresh(): Promise<Snapshot> {
    const at = this.now();
    const unfinished = await this.stats.unfinishedJobCounts();
    const pools = new Set(unfinished.map((r) => r.poolId));
    if (this.finished && [...this.finished.keys()].some((id) => !pools.has(id))) this.finished = null;
    if (this.finished) {
      const since = await this.stats.finishedJobCountsAfter(this.upTo);
      if (since.upTo < this.upTo) this.finished = null;
      else this.add(since);
    }
    if (!this.finished) {
      this.finished = new Map();
      this.add(await this.stats.finishedJobCounts());
    }
    const rows: PoolCountRow<JobState>[] = [];
    for (const r of unfinished) {
      if (r.key !== null) rows.push({ project: r.project, pool: r.pool, key: r.key, count: r.count });
    }
    const names = new Map(unfinished.map((r) => [r.poolId, r]));
    for (const [poolId, byState] of this.finished) {
      const pool = names.get(poolId);
      if (!pool) continue; // made after the unfinished counts were read: it shows next time
      for (const [state, count] of byState) rows.push({ project: pool.project, pool: pool.pool, key: state, count });
    }
    // Pools with no job at all still get a row, so that the gauge shows them with zeros.
    for (const r of unfinished) {
      if (r.key === null && !this.finished.has(r.poolId)) rows.push({ project: r.project, pool: r.pool, key: null, count: 0 });
    }
    const byPool = new Map<number, Partial<Record<JobState, number>>>();
    for (const r of unfinished) {
      let counts = byPool.get(r.poolId);
      if (!counts) byPool.set(r.poolId, (counts = Object.fromEntries(this.finished.get(r.poolId) ?? [])));
      if (r.key !== null) counts[r.key] = r.count;
    }
    this.cached = { at, rows, byPool };
    return this.cached;
  }

  private add({ upTo, counts }: FinishedCounts): void {
    this.upTo = upTo;
    for (const { poolId, state, count } of counts) {
      let byState = this.finished!.get(poolId);
      if (!byState) this.finished!.set(poolId, (byState = new Map()));
      byState.set(state, (byState.get(state) ?? 0) + count);
    }
  }
}
