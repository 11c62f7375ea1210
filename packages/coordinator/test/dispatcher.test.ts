import path from 'node:path';
import type { JobSpec } from '@rbtk/protocol';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { timeOrderedId } from '../src/auth/secrets.js';
import { Dispatcher } from '../src/jobs/dispatcher.js';
import { type IndexedRunner, RunnerIndex } from '../src/jobs/runner-index.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { eventually, tempDir, testLogger } from './helpers.js';

const SPEC = { pool: 'p', executor: { type: 'shell', command: ['true'], env: {} }, requires: { labels: {} }, timeout: '1h', retries: 0 } as unknown as JobSpec;
let dir: { dir: string; cleanup: () => void };
let store: SqliteStore;
let poolId: number;

beforeEach(() => {
  dir = tempDir();
  store = SqliteStore.open(path.join(dir.dir, 'c.db'));
  store.db.prepare("INSERT INTO projects (name, created_at) VALUES ('default', 0)").run();
  poolId = Number(
    store.db
      .prepare("INSERT INTO pools (project, name, type, status, tags, airgapped, created_at, updated_at) VALUES ('default', 'p', 'self-hosted', 'active', '{}', 0, 0, 0)")
      .run().lastInsertRowid,
  );
});
afterEach(async () => {
  await store.close();
  dir.cleanup();
});

it('a dispatch pass leaves alone a queued job that a handoff has reserved, and so never gives back its slot', async () => {
  const ids = [timeOrderedId(), timeOrderedId()];
  for (const id of ids) await store.jobs.submit({ id, project: 'default', poolId, poolName: 'p', spec: SPEC, timeoutMs: 3_600_000, createdAt: 1 });
  const index = new RunnerIndex();
  // Room for three: one attempt in flight (its result is arriving), two free slots.
  const runner: IndexedRunner = {
    id: 'r1',
    poolId,
    status: 'ONLINE',
    executors: new Set(['shell']),
    labels: {},
    airgapped: false,
    maxJobs: 3,
    gpus: [],
    inFlight: new Map([['finishing', []]]),
    lastAssignedAt: 0,
    owner: {},
    send: () => {},
  };
  index.add(runner);
  const assigned: string[] = [];
  const dispatcher = new Dispatcher({
    store,
    index,
    log: testLogger(),
    now: () => 2,
    apply: (items) => store.jobs.transition(items, 2),
    assigned: (job) => void assigned.push(job.id),
  });
  // The handoff takes the queue's head for the slot being freed; its commit (with the result) is still to come.
  expect((await dispatcher.handoff(runner, 'finishing'))?.id).toBe(ids[0]);
  // A pass now reads both jobs, still queued in the table: it must take only the other one.
  dispatcher.kick(poolId);
  await eventually(async () => (assigned.length > 0 ? true : null));
  expect(assigned).toEqual([ids[1]]);
  expect([...runner.inFlight.keys()]).toEqual(['finishing', ids[0], ids[1]]);
  expect((await store.jobs.get(ids[0]!))?.state).toBe('queued');
  expect((await store.jobs.get(ids[1]!))).toMatchObject({ state: 'assigned', runnerId: 'r1' });
  // A second reservation of the same job on the same runner takes nothing.
  expect(index.reserve(runner, { id: ids[0]!, spec: SPEC }, 3)).toBe(false);
  expect(runner.inFlight.size).toBe(3);
});
