import { JobState, type PoolStats } from '@rbtk/protocol';
import type { PoolRecord } from '../store/rows.js';
import type { StatsStore } from '../store/stats-store.js';
import type { JobCounts } from './job-counts.js';

/** The throughput windows `finished` reports on. */
export const FINISHED_WINDOWS_MINUTES = [5, 60] as const;
/** Queue wait and run time are taken over the jobs finished in this window… */
export const LATENCY_WINDOW_MINUTES = 60;
/** …the latest this many of them at most, so a busy pool's answer stays cheap. */
export const LATENCY_MAX_JOBS = 10_000;

const MINUTE_MS = 60_000;

/**
 * A pool's stats at `now`. Its jobs per state are /metrics' incremental counts, refreshed for the
 * call (O(pools + unfinished jobs + events since the last refresh), never a count of its whole
 * history); the windows and percentiles are read from the (pool_id, finished_at) index, bounded
 * by their window (and the latency sample by LATENCY_MAX_JOBS).
 */
export async function computePoolStats(stats: StatsStore, jobCounts: Pick<JobCounts, 'ofPool'>, pool: PoolRecord, now: number): Promise<PoolStats> {
  const [counts, last5, last60, latency] = await Promise.all([
    jobCounts.ofPool(pool.id),
    stats.finishedSince(pool.id, now - FINISHED_WINDOWS_MINUTES[0] * MINUTE_MS),
    stats.finishedSince(pool.id, now - FINISHED_WINDOWS_MINUTES[1] * MINUTE_MS),
    stats.latency(pool.id, { since: now - LATENCY_WINDOW_MINUTES * MINUTE_MS, limit: LATENCY_MAX_JOBS }),
  ]);
  const jobs = Object.fromEntries(JobState.options.map((s) => [s, counts[s] ?? 0])) as PoolStats['jobs'];
  const rate = (minutes: number, count: number) => ({ minutes, count, perMinute: round(count / minutes) });
  return {
    pool: pool.name,
    project: pool.project,
    at: new Date(now).toISOString(),
    jobs,
    finished: { last5m: rate(FINISHED_WINDOWS_MINUTES[0], last5), last60m: rate(FINISHED_WINDOWS_MINUTES[1], last60) },
    latency: {
      windowMinutes: LATENCY_WINDOW_MINUTES,
      jobs: latency.jobs,
      queueWaitMs: { p50: latency.queueWaitP50, p95: latency.queueWaitP95 },
      runTimeMs: { p50: latency.runTimeP50, p95: latency.runTimeP95 },
    },
    runners: { ...pool.counts },
  };
}

/** Two decimals: 7 jobs in 60 minutes is 0.12 a minute, not 0.11666666666666667. */
function round(n: number): number {
  return Math.round(n * 100) / 100;
}
