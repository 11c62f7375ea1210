import path from 'node:path';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { auditRow } from '../src/audit.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { tempDir } from './helpers.js';

// The heartbeat write path (SqliteRunnerStore.recordHeartbeat): batched per
// event-loop turn, without an fsync of its own, and nothing else affected.

const T0 = Date.UTC(2030, 0, 1);
let dir: { dir: string; cleanup: () => void };
let store: SqliteStore;

beforeEach(async () => {
  dir = tempDir();
  store = SqliteStore.open(path.join(dir.dir, 'c.db'));
  await store.projects.create({ name: 'default', createdAt: T0 });
  const pool = await store.pools.create(
    { project: 'default', name: 'p', type: 'self-hosted', status: 'active', tags: {}, airgapped: false, allowNonAirgappedJobs: false, dockerNetwork: null, createdAt: T0, updatedAt: T0 },
    auditRow({ at: T0, actor: 'test', action: 'pool.create', resourceType: 'pool', resourceId: 'p', project: 'default' }),
  );
  await store.registrationTokens.insert(
    { id: 'reg', poolId: pool!.id, hash: 'h', expiresAt: T0 + 3_600_000, usesLeft: null, createdBy: 'test', createdAt: T0 },
    auditRow({ at: T0, actor: 'test', action: 'token.mint', resourceType: 'pool', resourceId: 'reg', project: 'default' }),
  );
  for (const id of ['r1', 'r2', 'r3']) {
    await store.runners.register({
      registrationTokenId: 'reg',
      now: T0,
      runner: {
        id, poolId: pool!.id, name: `host-${id}`, labels: {}, airgapped: false, status: 'OFFLINE', draining: false,
        agentVersion: null, host: null, capabilities: null, registrationTokenId: 'reg', registeredAt: T0, lastHeartbeatAt: null,
      },
      token: { id: `tok-${id}`, runnerId: id, hash: 'x', state: 'current', createdAt: T0 },
      audit: auditRow({ at: T0, actor: 'test', action: 'runner.register', resourceType: 'runner', resourceId: id, project: 'default' }),
    });
  }
});

afterEach(async () => {
  await store.close();
  dir.cleanup();
});

it('answers each heartbeat of one turn with its runner\'s status, stored, and leaves synchronous=FULL', async () => {
  const answers = await Promise.all([
    store.runners.recordHeartbeat('r1', T0 + 1),
    store.runners.recordHeartbeat('r2', T0 + 2),
    store.runners.recordHeartbeat('gone', T0 + 3),
    store.runners.recordHeartbeat('r1', T0 + 4),
  ]);
  expect(answers).toEqual(['ONLINE', 'ONLINE', null, 'ONLINE']);
  expect((await store.runners.get('r2'))!.lastHeartbeatAt).toBe(T0 + 2);
  expect((await store.runners.get('r1'))!.lastHeartbeatAt).toBe(T0 + 4);
  expect((await store.runners.get('r3'))!.status).toBe('OFFLINE');
  expect(store.db.pragma('synchronous', { simple: true })).toBe(2); // FULL again for everything else
  expect(await store.runners.markOffline(T0 + 2)).toEqual(['r2']);
});

it('rejects the heartbeats of a turn when the database is gone, without throwing elsewhere', async () => {
  const pending = store.runners.recordHeartbeat('r1', T0 + 1);
  await store.close();
  await expect(pending).rejects.toThrow();
});

it('commits a heartbeat and the pending token it issues in one transaction: one fdatasync, which only the token waits for', async () => {
  let syncs = 0;
  store.observeWalSyncs(() => syncs++);
  const transactions = vi.spyOn(store.db, 'transaction');
  let heartbeatAt = 0;
  const heartbeat = store.runners.recordHeartbeat('r1', T0 + 1).then(() => (heartbeatAt = syncs));
  const pending = store.runnerTokens.addPending({ id: 'tok-next', runnerId: 'r1', hash: 'y', state: 'pending', createdAt: T0 + 1 }, 3);
  await Promise.all([heartbeat, pending]);
  expect(transactions).toHaveBeenCalledTimes(1);
  expect(heartbeatAt).toBe(0); // answered at the commit, before the fdatasync ended
  expect(syncs).toBe(1);
  expect((await store.runners.get('r1'))!.lastHeartbeatAt).toBe(T0 + 1);
  expect((await store.runnerTokens.get('tok-next'))!.state).toBe('pending');
  // A heartbeat alone waits for no fdatasync at all.
  await store.runners.recordHeartbeat('r2', T0 + 2);
  expect(syncs).toBe(1);
});

it('collects heartbeats of a few milliseconds, not only of one turn, into one transaction', async () => {
  const transactions = vi.spyOn(store.db, 'transaction');
  const first = store.runners.recordHeartbeat('r1', T0 + 1);
  await new Promise((r) => setTimeout(r, 1)); // a later turn, as a fleet's heartbeats arrive
  const second = store.runners.recordHeartbeat('r2', T0 + 2);
  expect(await Promise.all([first, second])).toEqual(['ONLINE', 'ONLINE']);
  expect(transactions).toHaveBeenCalledTimes(1);
  expect([(await store.runners.get('r1'))!.lastHeartbeatAt, (await store.runners.get('r2'))!.lastHeartbeatAt]).toEqual([T0 + 1, T0 + 2]);
});

it('answers DRAINING to the heartbeat of a runner an operator drained, or that drains itself', async () => {
  const drained = auditRow({ at: T0, actor: 'test', action: 'runner.drain', resourceType: 'runner', resourceId: 'r1', project: 'default' });
  await store.runners.setDraining('r1', true, () => drained);
  await store.runners.recordDrain('r2', 'upgrading', () => ({ ...drained, resourceId: 'r2' }));
  expect(await Promise.all([store.runners.recordHeartbeat('r1', T0 + 1), store.runners.recordHeartbeat('r2', T0 + 1)])).toEqual([
    'DRAINING',
    'DRAINING',
  ]);
  await store.runners.setDraining('r1', false, () => drained);
  expect(await store.runners.recordHeartbeat('r1', T0 + 2)).toBe('ONLINE');
});
