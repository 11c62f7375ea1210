import { z } from 'zod';
import { Name, Timestamp } from './common.js';
import { RunnerCounts } from './pool.js';

/** Jobs of a pool in each state, every state present (0 when none). */
export const JobStateCounts = z.object({
  queued: z.number().int().nonnegative(),
  assigned: z.number().int().nonnegative(),
  running: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  cancelled: z.number().int().nonnegative(),
  timed_out: z.number().int().nonnegative(),
});
export type JobStateCounts = z.infer<typeof JobStateCounts>;

/** Jobs that reached a terminal state (any of them) in the last `minutes`. */
export const FinishedRate = z.object({
  minutes: z.number().int().positive(),
  count: z.number().int().nonnegative(),
  perMinute: z.number().nonnegative(),
});
export type FinishedRate = z.infer<typeof FinishedRate>;

/** Nearest-rank percentiles in milliseconds; null when no job is in the sample. */
export const Percentiles = z.object({
  p50: z.number().nonnegative().nullable(),
  p95: z.number().nonnegative().nullable(),
});
export type Percentiles = z.infer<typeof Percentiles>;

/**
 * Queue wait (created → started) and run time (started → finished) of the
 * jobs that finished in the last `windowMinutes` after they had started;
 * `jobs` is the sample size.
 */
export const JobLatency = z.object({
  windowMinutes: z.number().int().positive(),
  jobs: z.number().int().nonnegative(),
  queueWaitMs: Percentiles,
  runTimeMs: Percentiles,
});
export type JobLatency = z.infer<typeof JobLatency>;

/** `GET /v1/pools/:name/stats`: a pool's jobs and runners, computed when asked (`at`). */
export const PoolStats = z.object({
  pool: Name,
  project: Name,
  at: Timestamp,
  jobs: JobStateCounts,
  /** Over the last 5 and the last 60 minutes. */
  finished: z.object({ last5m: FinishedRate, last60m: FinishedRate }),
  latency: JobLatency,
  runners: RunnerCounts,
});
export type PoolStats = z.infer<typeof PoolStats>;
