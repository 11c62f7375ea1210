import { afterEach, beforeEach, expect, it } from 'vitest';
import { Dispatcher } from '../src/jobs/dispatcher.js';
import { type IndexedRunner, RunnerIndex } from '../src/jobs/runner-index.js';
import { eventually, testLogger } from './helpers.js';
import { SHELL_SPEC as SPEC, type StoreWithPool, storeWithPool } from './store-helpers.js';

let fixture: StoreWithPool;
beforeEach(() => {
  fixture = storeWithPool();
});
afterEach(() => fixture.close());

it('a dispatch pass leaves alone a queued job that a handoff has reserved, and so never gives back its slot', async () => {
  const { store, poolId } = fixture;
  const ids = [await fixture.submit(), await fixture.submit()];
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
    inFlight: new Map([['finishing', { attempt: 1, gpus: [] }]]),
    stopping: new Map(),
    restingUntil: 0,
    refusals: 0,
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
  expect(index.reserve(runner, { id: ids[0]!, spec: SPEC, attempt: 0 })).toBe(false);
  expect(runner.inFlight.size).toBe(3);
});
