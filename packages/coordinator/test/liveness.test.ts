import path from 'node:path';
import { ROUTES } from '@rbtk/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { livenessInterval, livenessTick, runLivenessLoop } from '../src/liveness.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { SessionRegistry } from '../src/ws/sessions.js';
import { auditRow } from '../src/audit.js';
import { eventually, TestCoordinator, TestSocket, tempDir, testLogger } from './helpers.js';

describe('livenessTick with a fake clock', () => {
  const T0 = Date.UTC(2030, 0, 1);
  let clock = T0;
  let dir: ReturnType<typeof tempDir>;
  let store: SqliteStore;
  const deps = () => ({
    store,
    sessions: new SessionRegistry(),
    log: testLogger(),
    offlineAfterMs: 60_000,
    reapAfterMs: 3_600_000,
    now: () => clock,
  });

  beforeEach(async () => {
    clock = T0;
    dir = tempDir();
    store = SqliteStore.open(path.join(dir.dir, 'l.db'));
    await store.projects.create({ name: 'default', createdAt: T0 });
    const pool = await store.pools.create(
      { project: 'default', name: 'p', type: 'self-hosted', status: 'active', tags: {}, airgapped: false, allowNonAirgappedJobs: false, dockerNetwork: null, createdAt: T0, updatedAt: T0 },
      auditRow({ at: T0, actor: 't', action: 'pool.create', resourceType: 'pool', resourceId: 'p', project: 'default' }),
    );
    await store.registrationTokens.insert(
      { id: 'reg', poolId: pool!.id, hash: 'h', expiresAt: T0 + 1e9, usesLeft: null, createdBy: 't', createdAt: T0 },
      auditRow({ at: T0, actor: 't', action: 'token.mint', resourceType: 'token', resourceId: 'reg', project: 'default' }),
    );
    await store.runners.register({
      registrationTokenId: 'reg',
      now: T0,
      runner: {
        id: 'r1', poolId: pool!.id, name: 'h', labels: {}, airgapped: false, status: 'OFFLINE', draining: false,
        agentVersion: null, host: null, capabilities: null, registrationTokenId: 'reg', registeredAt: T0, lastHeartbeatAt: null,
      },
      token: { id: 'tok', runnerId: 'r1', hash: 'x', state: 'current', createdAt: T0 },
      audit: auditRow({ at: T0, actor: 't', action: 'runner.register', resourceType: 'runner', resourceId: 'r1', project: 'default' }),
    });
  });

  afterEach(async () => {
    await store.close();
    dir.cleanup();
  });

  it('marks OFFLINE exactly at the threshold, back ONLINE on heartbeat, reaps after reapAfter', async () => {
    await store.runners.recordHeartbeat('r1', T0);
    clock = T0 + 59_999;
    expect(await livenessTick(deps())).toEqual({ markedOffline: [], reaped: [] });
    clock = T0 + 60_000;
    expect(await livenessTick(deps())).toEqual({ markedOffline: ['r1'], reaped: [] });
    expect((await store.runners.get('r1'))!.status).toBe('OFFLINE');
    expect((await livenessTick(deps())).markedOffline).toEqual([]); // once

    expect(await store.runners.recordHeartbeat('r1', clock)).toBe('ONLINE');
    const lastBeat = clock;
    clock = lastBeat + 3_600_000 - 1;
    expect((await livenessTick(deps())).reaped).toEqual([]);
    clock = lastBeat + 3_600_000;
    expect((await livenessTick(deps())).reaped).toEqual(['r1']);
    expect(await store.runners.get('r1')).toBeNull();
    expect(await store.runnerTokens.get('tok')).toBeNull();
    const last = (await store.audit.list({ project: 'default', limit: 1 }))[0];
    expect(last).toMatchObject({ action: 'runner.reap', actor: 'system', resourceId: 'r1' });
  });

  it('counts silence from when this coordinator began to listen: a restart after an outage marks no runner OFFLINE at once', async () => {
    await store.runners.recordHeartbeat('r1', T0);
    // Down for ten minutes; back at T0 + 10 min. The runner's last heartbeat is long past the threshold.
    const back = T0 + 600_000;
    const restarted = () => ({ ...deps(), watchingSince: back, reapAfterMs: 300_000 });
    clock = back + 1_000;
    expect(await livenessTick(restarted())).toEqual({ markedOffline: [], reaped: [] });
    clock = back + 59_999;
    expect((await livenessTick(restarted())).markedOffline).toEqual([]);
    // A full --offline-after since the restart without a word from it: now it is OFFLINE.
    clock = back + 60_000;
    expect((await livenessTick(restarted())).markedOffline).toEqual(['r1']);
    // And reaped only once reapAfter has passed since the restart too.
    clock = back + 299_999;
    expect((await livenessTick(restarted())).reaped).toEqual([]);
    clock = back + 300_000;
    expect((await livenessTick(restarted())).reaped).toEqual(['r1']);
  });

  it('tries a failed requeue of an OFFLINE runner\'s jobs again on each tick until it succeeds', async () => {
    await store.runners.recordHeartbeat('r1', T0);
    clock = T0 + 60_000;
    const calls: string[] = [];
    let failuresLeft = 2;
    const offlineRetries = new Set<string>();
    const onOffline = async (id: string) => {
      calls.push(id);
      if (failuresLeft-- > 0) throw new Error('SQLITE_FULL: database or disk is full');
    };
    expect((await livenessTick({ ...deps(), onOffline, offlineRetries })).markedOffline).toEqual(['r1']);
    expect(offlineRetries).toEqual(new Set(['r1']));
    // Not marked again (it is OFFLINE already), but its requeue is tried again, until it succeeds.
    expect((await livenessTick({ ...deps(), onOffline, offlineRetries })).markedOffline).toEqual([]);
    await livenessTick({ ...deps(), onOffline, offlineRetries });
    await livenessTick({ ...deps(), onOffline, offlineRetries });
    expect(calls).toEqual(['r1', 'r1', 'r1']);
    expect(offlineRetries.size).toBe(0);
  });

  it('reaps a runner that registered and never spoke, counting from registration', async () => {
    clock = T0 + 3_600_000;
    expect((await livenessTick(deps())).reaped).toEqual(['r1']);
  });

  it('ticks every min(1s, offlineAfter/4) and the loop returns on abort', async () => {
    expect(livenessInterval(60_000)).toBe(1000);
    expect(livenessInterval(400)).toBe(100);
    const abort = new AbortController();
    const loop = runLivenessLoop({ ...deps(), offlineAfterMs: 40 }, abort.signal);
    await eventually(async () => (await store.runners.get('r1'))?.status === 'OFFLINE');
    abort.abort();
    await loop; // returns, does not hang
  });
});

describe('liveness on a running coordinator', () => {
  let tc: TestCoordinator | undefined;
  afterEach(async () => {
    await tc?.stop();
    tc = undefined;
  });

  it('a silent runner goes OFFLINE with its socket open, and ONLINE again on its next heartbeat', async () => {
    tc = await TestCoordinator.start({ offlineAfterMs: 400, reapAfterMs: 60_000 });
    const reg = await tc.newRunner('live');
    const s = await TestSocket.open(tc.wsUrl, reg.token);
    await s.hello();
    expect((await tc.api('GET', ROUTES.runner(reg.runnerId))).body.status).toBe('ONLINE');
    const offline = await eventually(async () => {
      const r = (await tc!.api('GET', ROUTES.runner(reg.runnerId))).body;
      return r.status === 'OFFLINE' && r;
    });
    expect(offline.connected).toBe(true);
    expect((await tc.api('GET', ROUTES.pool('live'))).body.runners).toEqual({ online: 0, draining: 0, offline: 1 });
    expect((await s.heartbeat(1)).status).toBe('ONLINE');
    expect((await tc.api('GET', ROUTES.runner(reg.runnerId))).body.status).toBe('ONLINE');
    s.ws.terminate();
  });

  it('reaps a runner silent for reapAfter and closes its socket', async () => {
    tc = await TestCoordinator.start({ offlineAfterMs: 300, reapAfterMs: 800 });
    const reg = await tc.newRunner('reap');
    const s = await TestSocket.open(tc.wsUrl, reg.token);
    await s.hello();
    expect((await s.closed).code).toBe(4401);
    expect((await tc.api('GET', ROUTES.runner(reg.runnerId))).status).toBe(404);
    const audit = await tc.api('GET', `${ROUTES.audit}?resourceType=runner`);
    expect(audit.body.at(-1)).toMatchObject({ action: 'runner.reap', actor: 'system', resourceId: reg.runnerId });
    expect((await TestSocket.refusal(tc.wsUrl, reg.token)).status).toBe(401);
  });
});
