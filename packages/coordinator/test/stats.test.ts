import path from 'node:path';
import { JobState, PoolStats, ROUTES } from '@rbtk/protocol';
import fc from 'fast-check';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { auditRow } from '../src/audit.js';
import { assignTo, finish, started } from '../src/jobs/decisions.js';
import { JobCounts } from '../src/metrics/job-counts.js';
import { computePoolStats, LATENCY_MAX_JOBS } from '../src/metrics/pool-stats.js';
import type { PoolRecord } from '../src/store/rows.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { UNFINISHED_SQL } from '../src/store/sqlite/stats.js';
import { tempDir } from './helpers.js';
import { jobsFixture } from './jobs-helpers.js';
import { SHELL_SPEC } from './store-helpers.js';

/*
 * The stats SQL on a real SQLite file, with jobs written straight into the
 * table so their times are exact: counts per state, finished in a window,
 * nearest-rank p50/p95.
 */

const NOW = Date.UTC(2030, 0, 1, 12);
const MIN = 60_000;

let dir: { dir: string; cleanup: () => void };
let store: SqliteStore;
let jobCounts: JobCounts;
let pools: Record<string, PoolRecord>;
let seq = 0;

async function createPool(name: string): Promise<PoolRecord> {
  await store.pools.create(
    {
      project: 'default',
      name,
      type: 'self-hosted',
      status: 'active',
      tags: {},
      airgapped: false,
      allowNonAirgappedJobs: false,
      dockerNetwork: null,
      createdAt: NOW,
      updatedAt: NOW,
    },
    auditRow({ at: NOW, actor: 'test', action: 'pool.create', resourceType: 'pool', resourceId: name, project: 'default' }),
  );
  return (await store.pools.get('default', name))!;
}

interface JobTimes {
  state: JobState;
  createdAt?: number;
  startedAt?: number | null;
  finishedAt?: number | null;
}

function insertJob(pool: string, t: JobTimes): void {
  store.db
    .prepare(
      `INSERT INTO jobs (id, project, pool_id, state, spec, timeout_ms, retries, created_at, started_at, finished_at)
       VALUES (?, 'default', ?, ?, '{}', 60000, 0, ?, ?, ?)`,
    )
    .run(`job${++seq}`, pools[pool]!.id, t.state, t.createdAt ?? NOW - 2 * 60 * MIN, t.startedAt ?? null, t.finishedAt ?? null);
}

/** A job that waited `waitMs` in the queue, ran `runMs` and finished at `finishedAt`. */
function finishedJob(pool: string, finishedAt: number, waitMs: number, runMs: number, state: JobState = 'succeeded'): void {
  const startedAt = finishedAt - runMs;
  insertJob(pool, { state, createdAt: startedAt - waitMs, startedAt, finishedAt });
}

/** The reference: the value at rank ceil(n * p / 100) of the sorted sample. */
function nearestRank(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil((values.length * p) / 100) - 1]!;
}

/** The pool's stats as GET /v1/stats answers them, from this store's job counts (fresh: counted from scratch on the first call). */
const poolStats = (pool: PoolRecord) => computePoolStats(store.stats, jobCounts, pool, NOW);

beforeEach(async () => {
  dir = tempDir();
  store = SqliteStore.open(path.join(dir.dir, 's.db'));
  jobCounts = new JobCounts(store.stats, () => NOW);
  await store.projects.create({ name: 'default', createdAt: NOW });
  pools = { build: await createPool('build'), other: await createPool('other') };
});

afterEach(async () => {
  await store.close();
  dir.cleanup();
});

describe('pool stats', () => {
  it('counts every state, zeros included, for an empty pool', async () => {
    const stats = await poolStats(pools.build!);
    expect(PoolStats.parse(stats)).toEqual(stats);
    expect(stats.jobs).toEqual({ queued: 0, assigned: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0, timed_out: 0 });
    expect(stats.finished).toEqual({ last5m: { minutes: 5, count: 0, perMinute: 0 }, last60m: { minutes: 60, count: 0, perMinute: 0 } });
    expect(stats.latency).toEqual({ windowMinutes: 60, jobs: 0, queueWaitMs: { p50: null, p95: null }, runTimeMs: { p50: null, p95: null } });
    expect(stats.runners).toEqual({ online: 0, draining: 0, offline: 0 });
    expect(stats.at).toBe(new Date(NOW).toISOString());
  });

  it('counts jobs per state, jobs finished per window and nearest-rank percentiles', async () => {
    // 20 finished jobs, one a minute back from now: wait i × 100 ms, run i s.
    for (let i = 1; i <= 20; i++) finishedJob('build', NOW - i * MIN, i * 100, i * 1000, i % 4 === 0 ? 'failed' : 'succeeded');
    // Finished 61 minutes ago: outside every window.
    finishedJob('build', NOW - 61 * MIN, 50_000, 50_000);
    // Cancelled while queued just now: finished, but never started, so not in the latency sample.
    insertJob('build', { state: 'cancelled', finishedAt: NOW });
    insertJob('build', { state: 'queued' });
    insertJob('build', { state: 'queued' });
    insertJob('build', { state: 'assigned' });
    insertJob('build', { state: 'running', startedAt: NOW - MIN });
    // Another pool's jobs count only there.
    finishedJob('other', NOW - MIN, 1, 1);
    insertJob('other', { state: 'queued' });

    const stats = await poolStats(pools.build!);
    expect(stats.jobs).toEqual({ queued: 2, assigned: 1, running: 1, succeeded: 16, failed: 5, cancelled: 1, timed_out: 0 });
    // Last 5 minutes: the jobs of minutes 1..5 (the window includes its edge) and the cancelled one.
    expect(stats.finished.last5m).toEqual({ minutes: 5, count: 6, perMinute: 1.2 });
    expect(stats.finished.last60m).toEqual({ minutes: 60, count: 21, perMinute: 0.35 });
    // n = 20: p50 is the 10th value, p95 the 19th.
    expect(stats.latency).toEqual({
      windowMinutes: 60,
      jobs: 20,
      queueWaitMs: { p50: 1000, p95: 1900 },
      runTimeMs: { p50: 10_000, p95: 19_000 },
    });

    const other = await poolStats(pools.other!);
    expect(other.jobs).toMatchObject({ queued: 1, succeeded: 1 });
    expect(other.latency).toMatchObject({ jobs: 1, queueWaitMs: { p50: 1, p95: 1 }, runTimeMs: { p50: 1, p95: 1 } });
  });

  it('takes the percentiles over the latest finished jobs only, up to the limit', async () => {
    for (let i = 1; i <= 5; i++) finishedJob('build', NOW - i * MIN, i * 10, i * 10);
    // The latest 3 are i = 1, 2, 3 (values 10, 20, 30).
    const row = await store.stats.latency(pools.build!.id, { since: NOW - 60 * MIN, limit: 3 });
    expect(row).toEqual({ jobs: 3, queueWaitP50: 20, queueWaitP95: 30, runTimeP50: 20, runTimeP95: 30 });
    expect(LATENCY_MAX_JOBS).toBeGreaterThanOrEqual(1000);
  });

  it('never reports a negative wait when the clock stepped back', async () => {
    insertJob('build', { state: 'succeeded', createdAt: NOW - MIN, startedAt: NOW - 2 * MIN, finishedAt: NOW });
    const row = await store.stats.latency(pools.build!.id, { since: NOW - 60 * MIN, limit: 10 });
    expect(row.queueWaitP50).toBe(0);
  });

  it('matches the nearest-rank definition on any sample', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ wait: fc.integer({ min: 0, max: 100_000 }), run: fc.integer({ min: 0, max: 100_000 }) }), { maxLength: 60 }),
        async (sample) => {
          store.db.prepare('DELETE FROM jobs').run();
          sample.forEach((j, i) => finishedJob('build', NOW - i * 1000, j.wait, j.run));
          const row = await store.stats.latency(pools.build!.id, { since: NOW - 60 * MIN, limit: 1000 });
          const waits = sample.map((j) => j.wait);
          const runs = sample.map((j) => j.run);
          expect(row).toEqual({
            jobs: sample.length,
            queueWaitP50: nearestRank(waits, 50),
            queueWaitP95: nearestRank(waits, 95),
            runTimeP50: nearestRank(runs, 50),
            runTimeP95: nearestRank(runs, 95),
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('answers from the indexes, not a scan of the jobs table', () => {
    const plan = (sql: string, ...args: unknown[]) =>
      (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail).join('; ');
    expect(plan(UNFINISHED_SQL)).toMatch(/COVERING INDEX jobs_pool_state \(pool_id=\? AND state=\?\)/);
    expect(plan('SELECT COUNT(*) FROM jobs WHERE pool_id = ? AND finished_at >= ?', 1, NOW)).toMatch(/jobs_pool_finished/);
  });
});

describe('counts for /metrics', () => {
  it('lists every pool, with no jobs or runners as a null key', async () => {
    insertJob('build', { state: 'queued' });
    insertJob('build', { state: 'queued' });
    insertJob('build', { state: 'failed', finishedAt: NOW });
    const jobs = await store.stats.jobCountsByPool();
    expect(jobs).toEqual(
      expect.arrayContaining([
        { project: 'default', pool: 'build', key: 'queued', count: 2 },
        { project: 'default', pool: 'build', key: 'failed', count: 1 },
        { project: 'default', pool: 'other', key: null, count: 0 },
      ]),
    );
    expect(jobs).toHaveLength(3);
    expect(await store.stats.runnerCountsByPool()).toEqual([
      { project: 'default', pool: 'build', key: null, count: 0 },
      { project: 'default', pool: 'other', key: null, count: 0 },
    ]);
  });
});

describe('stats of a 50,000-job store', () => {
  const OUTCOMES = ['failed', 'cancelled', 'timed_out'] as const;

  /**
   * Jobs in both pools through the store's own submit and transitions (so with their job_events),
   * mostly history: of each hundred, 2 queued, 1 assigned, 1 running, 6 failed, cancelled or
   * timed out, 90 succeeded; 2% finished within the last hour.
   */
  async function fill(n: number, from = 0): Promise<void> {
    const both = [pools.build!, pools.other!];
    const HOUR = 60 * MIN;
    for (let start = from; start < from + n; start += 1000) {
      const batch = Array.from({ length: Math.min(1000, from + n - start) }, (_, k) => start + k);
      const id = (i: number) => `big${i}`;
      await Promise.all(
        batch.map((i) => {
          const pool = both[i % 2]!;
          return store.jobs.submit({ id: id(i), project: 'default', poolId: pool.id, poolName: pool.name, spec: SHELL_SPEC, timeoutMs: HOUR, createdAt: NOW - 3 * HOUR });
        }),
      );
      const step = (pick: (i: number) => boolean, decide: (i: number) => Parameters<typeof store.jobs.transition>[0][number]['decide']) =>
        store.jobs.transition(batch.filter(pick).map((i) => ({ jobId: id(i), decide: decide(i) })), NOW);
      const finishedAt = (i: number) => (i % 50 === 7 ? NOW - ((i % 59) + 1) * MIN : NOW - 2 * HOUR);
      await step((i) => i % 100 >= 2, () => assignTo('r1', NOW - 3 * HOUR));
      await step((i) => i % 100 >= 3, (i) => started('r1', 1, finishedAt(i) - 1000 - (i % 7)));
      await step(
        (i) => i % 100 >= 4,
        (i) => {
          const outcome = i % 100 < 10 ? OUTCOMES[i % 3]! : 'succeeded';
          return finish('r1', 1, { type: 'result', jobId: id(i), attempt: 1, outcome, exitCode: outcome === 'succeeded' ? 0 : 1, logBytes: 0 }, finishedAt(i));
        },
      );
    }
  }

  /** The answer before incremental counts: every job of the pool, counted. */
  function counted(poolId: number): Record<string, number> {
    const rows = store.db.prepare('SELECT state, COUNT(*) AS n FROM jobs WHERE pool_id = ? GROUP BY state').all(poolId) as { state: JobState; n: number }[];
    return Object.fromEntries(JobState.options.map((s) => [s, rows.find((r) => r.state === s)?.n ?? 0]));
  }

  /** Every statement `run` executes, with its parameters (spied on the statements' prototype, so cached ones too). */
  async function statementsOf(run: () => Promise<unknown>): Promise<{ sql: string; args: unknown[] }[]> {
    const proto = Object.getPrototypeOf(store.db.prepare('SELECT 1')) as Database.Statement;
    const spies = (['all', 'get', 'run', 'iterate'] as const).map((m) => vi.spyOn(proto, m));
    try {
      await run();
      return spies.flatMap((spy) => spy.mock.contexts.map((stmt, i) => ({ sql: (stmt as Database.Statement).source, args: spy.mock.calls[i]! as unknown[] })));
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  }

  const planOf = (sql: string, args: unknown[]) =>
    (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail);
  /** Its plan reads jobs only by rowid, or by pool and a state or finish time: never all of a pool's jobs. */
  const bounded = (detail: string) =>
    !/\b(SCAN|SEARCH) (j|jobs)\b/.test(detail) || /^SEARCH (j|jobs) USING .*\((rowid=\?|pool_id=\? AND (state|finished_at)[=<>])/.test(detail);

  it('counts what a direct COUNT of the table counts, and a warm call reads no pool\'s whole history', { timeout: 120_000 }, async () => {
    await fill(50_000);
    for (const pool of [pools.build!, pools.other!]) {
      expect((await poolStats(pool)).jobs).toEqual(counted(pool.id));
    }
    // Kept up to date from the events since: more jobs, some finished, and the answer is exact again.
    await fill(1000, 50_000);
    const statements = await statementsOf(() => poolStats(pools.build!));
    expect((await poolStats(pools.build!)).jobs).toEqual(counted(pools.build!.id));
    expect((await poolStats(pools.other!)).jobs).toEqual(counted(pools.other!.id));

    const unbounded = statements.flatMap(({ sql, args }) => planOf(sql, args).filter((d) => !bounded(d)).map((d) => `${d}  <-  ${sql.trim().slice(0, 80)}`));
    expect(unbounded).toEqual([]);
    // Six reads, whatever the history: unfinished jobs per pool, terminal events since and the log's end
    // (the counts), finished in 5 and in 60 minutes, the latency sample.
    expect(statements.filter(({ sql }) => !/^(BEGIN|COMMIT)\b/.test(sql))).toHaveLength(6);
    // The query this replaced fails that test: it read every job the pool ever had.
    expect(planOf('SELECT state, COUNT(*) AS n FROM jobs WHERE pool_id = ? GROUP BY state', [1]).filter((d) => !bounded(d))).toHaveLength(1);
  });
});

describe('GET /v1/stats', () => {
  const { start, runner, submit, tc } = jobsFixture();

  it('counts a change at once, though /metrics reuses its counts for 10 s', async () => {
    await start();
    const r = await runner('s');
    await submit('s');
    const a = await r.take();
    await r.complete(a);
    expect((await tc().api('GET', ROUTES.poolStats('s'))).body.jobs).toMatchObject({ succeeded: 1, queued: 0 });
    // A scrape: rbtk_jobs is counted now, and reused for a while.
    expect(await (await fetch(`${tc().url}/metrics`)).text()).toContain('rbtk_jobs{');
    await submit('s');
    await submit('s');
    const all = await tc().api('GET', ROUTES.stats);
    expect(all.body).toEqual([expect.objectContaining({ pool: 's', jobs: expect.objectContaining({ succeeded: 1, assigned: 1, queued: 1 }) })]);
  });
});
