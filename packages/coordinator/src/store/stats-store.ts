import type { JobState, RunnerStatus } from '@rbtk/protocol';

/** Nearest-rank percentiles (milliseconds) of a sample of finished jobs; null when the sample is empty. */
export interface LatencyRow {
  /** Jobs in the sample. */
  jobs: number;
  queueWaitP50: number | null;
  queueWaitP95: number | null;
  runTimeP50: number | null;
  runTimeP95: number | null;
}

export interface LatencyQuery {
  /** Jobs that finished at or after this (epoch ms), having started. */
  since: number;
  /** At most this many, the latest finished first. */
  limit: number;
}

/** How many of a pool's jobs (or runners) are in one state; every pool appears, a pool with none once with key null. */
export interface PoolCountRow<K extends string> {
  project: string;
  pool: string;
  key: K | null;
  count: number;
}

/** Jobs of one pool in one state. */
export interface PoolStateCount {
  poolId: number;
  state: JobState;
  count: number;
}

/** Every pool, with its jobs per unfinished state (queued, assigned, running); key null for a pool with none. */
export interface PoolUnfinishedRow extends PoolCountRow<JobState> {
  poolId: number;
}

/**
 * Finished jobs (terminal states) per pool and state, as of a point in the
 * job_events log: every terminal event with id <= `upTo` is counted, none after.
 */
export interface FinishedCounts {
  upTo: number;
  counts: PoolStateCount[];
}

/*
 * Read-only aggregates for `GET /v1/pools/:name/stats` and `/metrics`, computed
 * in the database (indexes from migration 3), never by loading jobs. Jobs per
 * state are kept from these by metrics/job-counts.ts, for both.
 */
export interface StatsStore {
  /** The pool's jobs that reached a terminal state at or after `since` (epoch ms). */
  finishedSince(poolId: number, since: number): Promise<number>;
  /** Queue wait (created → started) and run time (started → finished) p50/p95. */
  latency(poolId: number, query: LatencyQuery): Promise<LatencyRow>;
  /**
   * Every pool's jobs per state, exact, from a walk of every job ever stored: O(jobs). /metrics
   * keeps its counts incrementally instead (metrics/job-counts.ts); tests check they agree.
   */
  jobCountsByPool(): Promise<PoolCountRow<JobState>[]>;
  /** Every pool's queued, assigned and running jobs: O(pools + unfinished jobs), from the (pool_id, state) index. */
  unfinishedJobCounts(): Promise<PoolUnfinishedRow[]>;
  /** Every finished job, counted once (O(jobs)): where /metrics starts from. */
  finishedJobCounts(): Promise<FinishedCounts>;
  /** Jobs that reached a terminal state in job_events after event `afterId`: O(events since). */
  finishedJobCountsAfter(afterId: number): Promise<FinishedCounts>;
  /** Every pool's runners per status (for /metrics). */
  runnerCountsByPool(): Promise<PoolCountRow<RunnerStatus>[]>;
}
