import type { JobState } from '@rbtk/protocol';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { timeOrderedId } from '../src/auth/secrets.js';
import { auditRow } from '../src/audit.js';
import { assignTo, finish, requestCancel, requeueFree, runnerGone, started } from '../src/jobs/decisions.js';
import { JobCounts } from '../src/metrics/job-counts.js';
import type { JobDecision } from '../src/store/job-rows.js';
import { FINISHED_AFTER_SQL, UNFINISHED_SQL } from '../src/store/sqlite/stats.js';
import type { PoolCountRow } from '../src/store/stats-store.js';
import { SHELL_SPEC, type StoreWithPool, storeWithPool } from './store-helpers.js';

/*
 * /metrics' job counts, kept from job_events instead of a walk of every job
 * on each scrape: after any sequence of real store transitions they equal
 * the exact GROUP BY over the whole table, once they have been refreshed.
 */

let fixture: StoreWithPool;
let other: number;

beforeEach(() => {
  fixture = storeWithPool();
  other = addPool('q');
});
afterEach(() => fixture.close());

function addPool(name: string): number {
  return Number(
    fixture.store.db
      .prepare(
        "INSERT INTO pools (project, name, type, status, tags, airgapped, created_at, updated_at) VALUES ('default', ?, 'self-hosted', 'active', '{}', 0, 0, 0)",
      )
      .run(name).lastInsertRowid,
  );
}

async function submit(poolId: number, retries = 0): Promise<string> {
  const id = timeOrderedId();
  const spec = { ...SHELL_SPEC, retries };
  await fixture.store.jobs.submit({ id, project: 'default', poolId, poolName: poolId === other ? 'q' : 'p', spec, timeoutMs: 3_600_000, createdAt: 1 });
  return id;
}

const change = (jobId: string, decide: JobDecision) => fixture.store.jobs.transition([{ jobId, decide }], Date.now());

/** pool/state -> count, zeros left out: what the gauge shows. */
function normal(rows: PoolCountRow<JobState>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) if (r.key !== null && r.count > 0) out[`${r.pool}/${r.key}`] = (out[`${r.pool}/${r.key}`] ?? 0) + r.count;
  return out;
}

const exact = async () => normal(await fixture.store.stats.jobCountsByPool());
const pools = (rows: PoolCountRow<JobState>[]) => [...new Set(rows.map((r) => r.pool))].sort();

const ok = (jobId: string, attempt: number, outcome: 'succeeded' | 'failed' | 'cancelled' | 'timed_out') =>
  ({ type: 'result', jobId, attempt, outcome, exitCode: outcome === 'succeeded' ? 0 : 1, logBytes: 0 }) as const;

describe('job counts for /metrics', () => {
  it('equal the exact counts after any sequence of transitions, refreshed at any point', async () => {
    const Op = fc.oneof(
      fc.record({ op: fc.constant('submit' as const), pool: fc.boolean(), retries: fc.nat(1) }),
      fc.record({
        op: fc.constantFrom('assign', 'start', 'succeed', 'fail', 'cancel', 'timeout', 'requeue', 'lost', 'startAndFinish'),
        pick: fc.nat(),
      }),
      fc.constant({ op: 'scrape' as const }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(Op, { minLength: 1, maxLength: 60 }), async (ops) => {
        // A fresh store per run: the job store keeps unfinished jobs in memory too, so no table cleanup.
        await fixture.close();
        fixture = storeWithPool();
        other = addPool('q');
        const counts = new JobCounts(fixture.store.stats, Date.now, 0);
        const ids: string[] = [];
        for (const o of ops) {
          if (o.op === 'submit') {
            ids.push(await submit(o.pool ? other : fixture.poolId, o.retries));
            continue;
          }
          if (o.op === 'scrape') {
            expect(normal(await counts.read())).toEqual(await exact());
            continue;
          }
          if (ids.length === 0) continue;
          const id = ids[o.pick % ids.length]!;
          const job = (await fixture.store.jobs.get(id))!;
          const now = Date.now();
          const a = job.attempt;
          if (o.op === 'startAndFinish') {
            // One transaction: the row changes twice, with two events.
            await Promise.all([change(id, started('r1', a, now)), change(id, finish('r1', a, ok(id, a, 'succeeded'), now))]);
            continue;
          }
          const decide: Record<typeof o.op, JobDecision> = {
            assign: assignTo('r1', now),
            start: started('r1', a, now),
            succeed: finish('r1', a, ok(id, a, 'succeeded'), now),
            fail: finish('r1', a, ok(id, a, 'failed'), now),
            cancel: requestCancel(now, true),
            timeout: finish('r1', a, ok(id, a, 'timed_out'), now),
            requeue: requeueFree('r1', a, 'accept_timeout', now),
            lost: runnerGone('r1', a, 'runner_lost', now),
          };
          await change(id, decide[o.op]);
        }
        expect(normal(await counts.read())).toEqual(await exact());
      }),
      { numRuns: 40 },
    );
  });

  it('list every pool, with none of its jobs counted as zeros', async () => {
    addPool('empty');
    const rows = await new JobCounts(fixture.store.stats, Date.now, 0).read();
    expect(pools(rows)).toEqual(['empty', 'p', 'q']);
    expect(normal(rows)).toEqual({});
  });

  // One job more: the log ends below where the last refresh read. Three more: past it, with ids it had seen in between.
  it.each([1, 3])('count the finished jobs afresh when a pool is deleted (its events gone, their ids reused; %i job(s) after)', async (more) => {
    const counts = new JobCounts(fixture.store.stats, Date.now, 0);
    const finishIn = async (poolId: number) => {
      const id = await submit(poolId);
      await change(id, assignTo('r1', 1));
      await change(id, finish('r1', 1, ok(id, 1, 'succeeded'), 2));
    };
    await finishIn(fixture.poolId);
    await finishIn(other);
    await finishIn(other); // the newest events are q's
    expect(normal(await counts.read())).toEqual({ 'p/succeeded': 1, 'q/succeeded': 2 });
    const lastEvent = () => fixture.store.db.prepare('SELECT MAX(id) FROM job_events').pluck().get() as number;
    const before = lastEvent();
    const audit = auditRow({ at: 3, actor: 'test', action: 'pool.delete', resourceType: 'pool', resourceId: 'q', project: 'default' });
    expect((await fixture.store.pools.delete('default', 'q', audit)).kind).toBe('deleted');
    for (let i = 0; i < more; i++) await finishIn(fixture.poolId);
    expect(lastEvent() > before).toBe(more > 1);
    const rows = await counts.read();
    expect(normal(rows)).toEqual({ 'p/succeeded': 1 + more });
    expect(pools(rows)).toEqual(['p']);
  });

  it('are reused for maxAgeMs, then converge; scrapes meanwhile share one refresh', async () => {
    let now = 1_000_000;
    const unfinished = vi.spyOn(fixture.store.stats, 'unfinishedJobCounts');
    const after = vi.spyOn(fixture.store.stats, 'finishedJobCountsAfter');
    const counts = new JobCounts(fixture.store.stats, () => now, 10_000);
    const [a, b] = await Promise.all([counts.read(), counts.read()]);
    expect(a).toBe(b);
    expect(unfinished).toHaveBeenCalledTimes(1);
    const id = await submit(fixture.poolId);
    now += 9_999;
    expect(normal(await counts.read())).toEqual({});
    now += 1;
    expect(normal(await counts.read())).toEqual({ 'p/queued': 1 });
    await change(id, assignTo('r1', 1));
    await change(id, finish('r1', 1, ok(id, 1, 'failed'), 2));
    now += 10_000;
    expect(normal(await counts.read())).toEqual({ 'p/failed': 1 });
    expect(unfinished).toHaveBeenCalledTimes(3);
    // After the first, finished jobs come from the events since: no recount.
    expect(after).toHaveBeenCalledTimes(2);
  });

  it('refuses a negative max age', () => {
    expect(() => new JobCounts(fixture.store.stats, Date.now, -1)).toThrow(RangeError);
  });

  it('read unfinished jobs from the (pool_id, state) index and finished ones from the events since, never the jobs table in full', () => {
    const plan = (sql: string, ...args: unknown[]) =>
      (fixture.store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail).join('; ');
    const unfinished = plan(UNFINISHED_SQL);
    expect(unfinished).toMatch(/SEARCH j USING COVERING INDEX jobs_pool_state \(pool_id=\? AND state=\?\)/);
    expect(unfinished).not.toMatch(/SCAN j/);
    const since = plan(FINISHED_AFTER_SQL, { after: 0, upTo: 10 });
    expect(since).toMatch(/SEARCH e USING INTEGER PRIMARY KEY \(rowid>\? AND rowid<\?\)/);
    expect(since).toMatch(/SEARCH j USING INTEGER PRIMARY KEY \(rowid=\?\)/);
  });
});
