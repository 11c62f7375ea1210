import { type JobState, type RunnerStatus, TERMINAL_JOB_STATES } from '@rbtk/protocol';
import type { FinishedCounts, LatencyQuery, LatencyRow, PoolCountRow, PoolStateCount, PoolUnfinishedRow, StatsStore } from '../stats-store.js';
import { type Db, stmt } from './db.js';

/*
 * Nearest-rank percentile: the value at rank ceil(n * p / 100) of the sorted
 * sample, written with integer division ((n * p + 99) / 100) so it needs no
 * math functions. Both orderings are numbered in one pass over the sample.
 */
const LATENCY_SQL = `
  WITH sample AS (
    SELECT MAX(started_at - created_at, 0) AS wait, MAX(finished_at - started_at, 0) AS run
    FROM jobs
    WHERE pool_id = @pool AND finished_at >= @since AND started_at IS NOT NULL
    ORDER BY finished_at DESC
    LIMIT @limit
  ), ranked AS (
    SELECT wait, run,
      ROW_NUMBER() OVER (ORDER BY wait) AS wait_rank,
      ROW_NUMBER() OVER (ORDER BY run) AS run_rank,
      COUNT(*) OVER () AS n
    FROM sample
  )
  SELECT COUNT(*) AS jobs,
    MAX(CASE WHEN wait_rank = (n * 50 + 99) / 100 THEN wait END) AS wait_p50,
    MAX(CASE WHEN wait_rank = (n * 95 + 99) / 100 THEN wait END) AS wait_p95,
    MAX(CASE WHEN run_rank = (n * 50 + 99) / 100 THEN run END) AS run_p50,
    MAX(CASE WHEN run_rank = (n * 95 + 99) / 100 THEN run END) AS run_p95
  FROM ranked`;

const inList = (states: readonly string[]): string => states.map((s) => `'${s}'`).join(', ');
const TERMINAL = inList(TERMINAL_JOB_STATES);

/** Equalities on both columns of jobs_pool_state: a few index seeks per pool, only unfinished jobs read. (Exported: its plan is tested.) */
export const UNFINISHED_SQL = `
  SELECT p.id AS poolId, p.project, p.name AS pool, j.state AS key, COUNT(j.seq) AS count
  FROM pools p LEFT JOIN jobs j ON j.pool_id = p.id AND j.state IN ('queued', 'assigned', 'running')
  GROUP BY p.id, j.state`;

/**
 * Terminal events after a point of the log, by pool. CROSS JOIN keeps the order: the events by
 * rowid range, each job by its rowid (seq), never a walk of jobs looking for events.
 */
export const FINISHED_AFTER_SQL = `
  SELECT j.pool_id AS poolId, e.state, COUNT(*) AS count
  FROM job_events e CROSS JOIN jobs j ON j.seq = e.job_seq
  WHERE e.id > @after AND e.id <= @upTo AND e.state IN (${TERMINAL})
  GROUP BY j.pool_id, e.state`;

interface CountSql {
  project: string;
  pool: string;
  key: string | null;
  count: number;
}

export class SqliteStatsStore implements StatsStore {
  constructor(private readonly db: Db) {}

  async finishedSince(poolId: number, since: number): Promise<number> {
    const row = stmt(this.db, 'SELECT COUNT(*) AS n FROM jobs WHERE pool_id = ? AND finished_at >= ?').get(poolId, since) as { n: number };
    return row.n;
  }

  async latency(poolId: number, query: LatencyQuery): Promise<LatencyRow> {
    const r = stmt(this.db, LATENCY_SQL).get({ pool: poolId, since: query.since, limit: query.limit }) as {
      jobs: number;
      wait_p50: number | null;
      wait_p95: number | null;
      run_p50: number | null;
      run_p95: number | null;
    };
    return { jobs: r.jobs, queueWaitP50: r.wait_p50, queueWaitP95: r.wait_p95, runTimeP50: r.run_p50, runTimeP95: r.run_p95 };
  }

  async jobCountsByPool(): Promise<PoolCountRow<JobState>[]> {
    return stmt(
      this.db,
      `SELECT p.project, p.name AS pool, j.state AS key, COUNT(j.seq) AS count
       FROM pools p LEFT JOIN jobs j ON j.pool_id = p.id GROUP BY p.id, j.state`,
    ).all() as CountSql[] as PoolCountRow<JobState>[];
  }

  async unfinishedJobCounts(): Promise<PoolUnfinishedRow[]> {
    return stmt(this.db, UNFINISHED_SQL).all() as PoolUnfinishedRow[];
  }

  /*
   * Both below read the log's end and the counts in one read transaction, so a count and its
   * `upTo` describe the same commit. A job reaches a terminal state once (terminal states are
   * final) and its row and event commit together: counts as of upTo plus the terminal events
   * after it are every finished job, each once.
   */
  async finishedJobCounts(): Promise<FinishedCounts> {
    return this.db.transaction(() => ({
      upTo: this.lastEventId(),
      counts: stmt(
        this.db,
        `SELECT pool_id AS poolId, state, COUNT(*) AS count FROM jobs WHERE state IN (${TERMINAL}) GROUP BY pool_id, state`,
      ).all() as PoolStateCount[],
    }))();
  }

  async finishedJobCountsAfter(afterId: number): Promise<FinishedCounts> {
    return this.db.transaction(() => {
      const upTo = this.lastEventId();
      return { upTo, counts: stmt(this.db, FINISHED_AFTER_SQL).all({ after: afterId, upTo }) as PoolStateCount[] };
    })();
  }

  private lastEventId(): number {
    return stmt(this.db, 'SELECT COALESCE(MAX(id), 0) FROM job_events').pluck().get() as number;
  }

  async runnerCountsByPool(): Promise<PoolCountRow<RunnerStatus>[]> {
    return stmt(
      this.db,
      `SELECT p.project, p.name AS pool, r.status AS key, COUNT(r.id) AS count
       FROM pools p LEFT JOIN runners r ON r.pool_id = p.id GROUP BY p.id, r.status`,
    ).all() as CountSql[] as PoolCountRow<RunnerStatus>[];
  }
}
