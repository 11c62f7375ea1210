import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { timeOrderedId } from '../src/auth/secrets.js';
import { assignTo, finish, requestCancel, requeueFree, started } from '../src/jobs/decisions.js';
import type { JobDecision } from '../src/store/job-rows.js';
import { SqliteJobStore } from '../src/store/sqlite/jobs.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { SHELL_SPEC as SPEC, type StoreWithPool, storeWithPool } from './store-helpers.js';

/*
 * The job store keeps unfinished jobs in memory and writes a transaction's
 * row changes as it commits: these check that memory and the table never
 * disagree, whatever a write or a commit does.
 */
let fixture: StoreWithPool;
let store: SqliteStore;
let jobs: SqliteJobStore;
let poolId: number;

beforeEach(() => {
  fixture = storeWithPool();
  ({ store, poolId } = fixture);
  jobs = store.jobs;
});
afterEach(() => fixture.close());

const submit = (into = jobs) => fixture.submit(into);
const change = (jobId: string, decide: JobDecision, into = jobs) => into.transition([{ jobId, decide }], Date.now());
const totalChanges = () => store.db.prepare('SELECT total_changes()').pluck().get() as number;
const ok = { type: 'result', jobId: 'x', attempt: 1, outcome: 'succeeded', exitCode: 0, logBytes: 0 } as const;

describe('job store', () => {
  it('writes a job changed twice in one transaction once, with an event for each change', async () => {
    const id = await submit();
    await change(id, assignTo('r1', 1));
    const before = totalChanges();
    // Both in one turn, as a runner's started and result frames arrive: one transaction.
    const [s, f] = await Promise.all([change(id, started('r1', 1, 2)), change(id, finish('r1', 1, ok, 3))]);
    expect(s).toHaveLength(1);
    expect(f[0]!.after).toMatchObject({ state: 'succeeded', startedAt: 2, finishedAt: 3, version: 4 });
    // One UPDATE of the row and two job_events rows; an UPDATE per change would make it 4.
    expect(totalChanges() - before).toBe(3);
    expect((await jobs.events(id)).map((e) => e.state)).toEqual(['queued', 'assigned', 'running', 'succeeded']);
    expect(await jobs.get(id)).toMatchObject({ state: 'succeeded', attempt: 1, runnerId: 'r1', startedAt: 2, finishedAt: 3, exitCode: 0 });
  });

  it('a write that throws leaves nothing behind, in the table or in memory', async () => {
    const a = await submit();
    const b = await submit();
    const boom: JobDecision = () => {
      throw new Error('boom');
    };
    await expect(jobs.transition([{ jobId: a, decide: assignTo('r1', 1) }, { jobId: b, decide: boom }], 1)).rejects.toThrow('boom');
    expect(await jobs.get(a)).toMatchObject({ state: 'queued', attempt: 0 });
    // Had memory kept the rolled-back assignment, this would find the job assigned and change nothing.
    const [t] = await change(a, assignTo('r2', 2));
    expect(t!.after).toMatchObject({ state: 'assigned', attempt: 1, runnerId: 'r2' });
    expect((await jobs.events(a)).map((e) => e.state)).toEqual(['queued', 'assigned']);
  });

  it('a transaction that fails as it commits fails all its writes and leaves memory as the table', async () => {
    const a = await submit();
    const b = await submit();
    // Gone behind the store's back (nothing in rbtk deletes an unfinished job): its UPDATE at commit finds no row.
    store.db.prepare('DELETE FROM jobs WHERE id = ?').run(b);
    const results = await Promise.allSettled([change(a, assignTo('r1', 1)), change(b, assignTo('r1', 1))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(String((results[1] as PromiseRejectedResult).reason)).toContain(`job ${b} is not in the jobs table`);
    expect(await jobs.get(a)).toMatchObject({ state: 'queued', attempt: 0 });
    const [t] = await change(a, assignTo('r1', 2));
    expect(t!.after).toMatchObject({ state: 'assigned', attempt: 1, assignedAt: 2 });
  });

  it('past its memory limit it reads jobs from the table, and the queue stays FIFO', async () => {
    const small = new SqliteJobStore(store.db, { liveJobs: 1 });
    const ids = [await submit(small), await submit(small), await submit(small)];
    const queued = await small.listQueued(poolId, 0, 10);
    expect(queued.map((j) => j.id)).toEqual(ids);
    expect(queued.map((j) => j.spec)).toEqual([SPEC, SPEC, SPEC]);
    expect(queued.map((j) => j.seq)).toEqual([...queued.map((j) => j.seq)].sort((x, y) => x - y));
    expect((await small.listQueued(poolId, queued[0]!.seq, 1)).map((j) => j.id)).toEqual([ids[1]]);
    // The last one is not in memory: it is read, changed and written all the same.
    const [t] = await change(ids[2]!, assignTo('r1', 5), small);
    expect(t!.before).toMatchObject({ state: 'queued', seq: queued[2]!.seq });
    await Promise.all([change(ids[2]!, started('r1', 1, 6), small), change(ids[2]!, finish('r1', 1, ok, 7), small)]);
    expect(await small.get(ids[2]!)).toMatchObject({ state: 'succeeded', startedAt: 6, finishedAt: 7 });
    expect((await small.listQueued(poolId, 0, 10)).map((j) => j.id)).toEqual(ids.slice(0, 2));
  });

  it("reads each pool's queue from memory exactly as the table holds it, whatever happens to its jobs", async () => {
    const other = Number(
      store.db
        .prepare("INSERT INTO pools (project, name, type, status, tags, airgapped, created_at, updated_at) VALUES ('default', 'o', 'self-hosted', 'active', '{}', 0, 0, 0)")
        .run().lastInsertRowid,
    );
    const table = (pool: number, after: number, limit: number) =>
      store.db
        .prepare("SELECT id FROM jobs WHERE pool_id = ? AND state = 'queued' AND seq > ? ORDER BY seq LIMIT ?")
        .pluck()
        .all(pool, after, limit);
    const op = fc.oneof(
      fc.constantFrom('submit', 'submitOther'),
      fc.record({ assign: fc.nat() }),
      fc.record({ requeue: fc.nat() }),
      fc.record({ finish: fc.nat() }),
      fc.record({ cancel: fc.nat() }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60 }), async (ops) => {
        const ids: string[] = [];
        const pick = (n: number) => ids[n % ids.length];
        for (const o of ops) {
          if (o === 'submit' || o === 'submitOther') {
            const id = timeOrderedId();
            const pool = o === 'submit' ? poolId : other;
            await jobs.submit({ id, project: 'default', poolId: pool, poolName: 'x', spec: SPEC, timeoutMs: 1, createdAt: 1 });
            ids.push(id);
            continue;
          }
          if (ids.length === 0) continue;
          if ('assign' in o) await change(pick(o.assign)!, assignTo('r1', 1));
          else if ('requeue' in o) await change(pick(o.requeue)!, requeueFree('r1', (await jobs.get(pick(o.requeue)!))!.attempt, 'accept_timeout', Date.now()));
          else if ('finish' in o) await change(pick(o.finish)!, finish('r1', (await jobs.get(pick(o.finish)!))!.attempt, ok, 2));
          else await change(pick(o.cancel)!, requestCancel(3, true));
        }
        for (const pool of [poolId, other]) {
          const all = await jobs.listQueued(pool, 0, 1000);
          expect(all.map((j) => j.id)).toEqual(table(pool, 0, 1000));
          expect(all.every((j) => j.state === 'queued' && j.poolId === pool)).toBe(true);
          const after = all[1]?.seq ?? 0;
          expect((await jobs.listQueued(pool, after, 2)).map((j) => j.id)).toEqual(table(pool, after, 2));
        }
        const withQueued = store.db.prepare("SELECT DISTINCT pool_id FROM jobs WHERE state = 'queued'").pluck().all();
        expect((await jobs.poolsWithQueued()).sort()).toEqual(withQueued.sort());
      }),
      { numRuns: 40 },
    );
  });

  it('loads the unfinished jobs when it opens, and keeps FIFO order across a restart', async () => {
    const [a, b, c] = [await submit(), await submit(), await submit()];
    await change(a, assignTo('r1', 1));
    await change(c, assignTo('r1', 1));
    await change(a, requeueFree('r1', 1, 'accept_timeout', Date.now())); // back at its own place, ahead of b
    const file = store.db.name;
    await store.close();
    const reopened = SqliteStore.open(file);
    try {
      expect((await reopened.jobs.listQueued(poolId, 0, 10)).map((j) => j.id)).toEqual([a, b]);
      expect(await reopened.jobs.poolsWithQueued()).toEqual([poolId]);
      // The loaded job is the one in memory: its next change needs no read and is written.
      const [t] = await reopened.jobs.transition([{ jobId: c, decide: started('r1', 1, 5) }], 5);
      expect(t!.after).toMatchObject({ state: 'running', startedAt: 5 });
      expect((await reopened.jobs.listQueued(poolId, 0, 10)).map((j) => j.id)).toEqual([a, b]);
    } finally {
      await reopened.close();
    }
  });

  it('over its memory limit at open it reads queues from the table, and loads them again once they fit', async () => {
    const ids = [await submit(), await submit(), await submit()];
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const small = new SqliteJobStore(store.db, { liveJobs: 2 });
      expect((await small.listQueued(poolId, 0, 10)).map((j) => j.id)).toEqual(ids);
      await change(ids[0]!, assignTo('r1', 1), small);
      await change(ids[0]!, finish('r1', 1, ok, 2), small);
      expect((await small.listQueued(poolId, 0, 10)).map((j) => j.id)).toEqual(ids.slice(1));
      vi.setSystemTime(Date.now() + 60_000); // past the reload interval: two unfinished jobs now fit
      expect((await small.listQueued(poolId, 0, 10)).map((j) => j.id)).toEqual(ids.slice(1));
      await change(ids[1]!, assignTo('r1', 3), small);
      expect((await small.listQueued(poolId, 0, 10)).map((j) => j.id)).toEqual([ids[2]]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('job ids sort as they were created', () => {
    const ids = [timeOrderedId(1_000), timeOrderedId(61_999), timeOrderedId(62_000), timeOrderedId(Date.now())];
    expect([...ids].sort()).toEqual(ids);
    expect(ids.every((id) => /^[0-9A-Za-z]{16}$/.test(id))).toBe(true);
  });
});
