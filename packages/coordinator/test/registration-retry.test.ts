import { ROUTES, type RegisterResponse } from '@rbtk/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRow } from '../src/audit.js';
import { sleep, TestCoordinator, TestSocket } from './helpers.js';
import { newRunnerRow, storeWithPool } from './store-helpers.js';

// A registration retried with its registration id, because its answer was lost,
// is the same registration: same runner, a fresh token, no second use spent.

const DAY = 24 * 60 * 60 * 1000;
let tc: TestCoordinator;
/** Added to the coordinator's clock, to step past the retry window. */
let clockOffset = 0;

beforeAll(async () => {
  tc = await TestCoordinator.start({ now: () => Date.now() + clockOffset, reapAfterMs: 30 * DAY });
  await tc.createPool('retry');
});

afterAll(async () => {
  await tc.stop();
});

const errorOf = (res: { body: any }) => res.body.error as { code: string; message: string; details?: Record<string, unknown> };
const registrationId = (n: string) => `reg-${n}-${'x'.repeat(16)}`;

async function runnersNamed(name: string): Promise<{ id: string }[]> {
  const res = await tc.api('GET', `${ROUTES.runners}?pool=retry`);
  return (res.body as { id: string; name: string }[]).filter((r) => r.name === name);
}

async function auditOf(runnerId: string): Promise<{ action: string; details: Record<string, unknown> }[]> {
  const res = await tc.api('GET', `${ROUTES.audit}?resourceType=runner&limit=1000`);
  return (res.body as { resourceId: string; action: string; details: Record<string, unknown> }[]).filter((a) => a.resourceId === runnerId);
}

describe('registration retried with the same registration id', () => {
  it('answers the same runner with a fresh token, spends no second use, and only the fresh token connects', async () => {
    const reg = await tc.mintRegistrationToken('retry', { uses: 1 });
    const id = registrationId('a');
    const first = await tc.register(reg, { name: 'retry-a', registrationId: id });
    expect(first.status).toBe(201);
    // The token's one use is spent: a retry must still be answered.
    const second = await tc.register(reg, { name: 'retry-a', registrationId: id });
    expect(second.status, JSON.stringify(second.body)).toBe(201);
    const a = first.body as RegisterResponse;
    const b = second.body as RegisterResponse;
    expect(b).toMatchObject({ runnerId: a.runnerId, name: 'retry-a', pool: 'retry', project: 'default' });
    expect(b.token).not.toBe(a.token);
    expect(await runnersNamed('retry-a')).toHaveLength(1);

    // Not a second use: a new registration (another id) is refused as used up.
    const other = await tc.register(reg, { name: 'retry-a2', registrationId: registrationId('a2') });
    expect(errorOf(other).code).toBe('token_used_up');

    // The first token's hash was replaced: it no longer authenticates; the fresh one does.
    expect(await TestSocket.refusal(tc.wsUrl, a.token)).toMatchObject({ status: 401, body: { error: { code: 'token_unknown' } } });
    const socket = await TestSocket.open(tc.wsUrl, b.token);
    expect((await socket.hello()).runnerId).toBe(a.runnerId);
    socket.close();
    await socket.closed;

    const audit = await auditOf(a.runnerId);
    expect(audit.map((e) => [e.action, e.details.retry ?? false])).toEqual([
      ['runner.register', false],
      ['runner.register', true],
    ]);
    expect(JSON.stringify(audit)).not.toContain(b.token);
  });

  it('after the runner connected, answers 409 and changes nothing', async () => {
    const reg = await tc.mintRegistrationToken('retry', { uses: 2 });
    const id = registrationId('b');
    const first = (await tc.register(reg, { name: 'retry-b', registrationId: id })).body as RegisterResponse;
    const socket = await TestSocket.open(tc.wsUrl, first.token);
    await socket.hello();

    const again = await tc.register(reg, { name: 'retry-b', registrationId: id });
    expect(again.status).toBe(409);
    expect(errorOf(again)).toMatchObject({ code: 'conflict', details: { runnerId: first.runnerId } });
    expect(errorOf(again).message).toMatch(new RegExp(`^registration ${id} already completed: runner ${first.runnerId} has connected`));

    // Untouched: still connected on its token, which still authenticates; no use spent; no audit row.
    expect((await socket.heartbeat(1)).type).toBe('heartbeat_ack');
    const runner = await tc.api('GET', ROUTES.runner(first.runnerId));
    expect(runner.body).toMatchObject({ connected: true, status: 'ONLINE' });
    expect(await auditOf(first.runnerId)).toHaveLength(1);
    expect((await tc.register(reg, { name: 'retry-b2', registrationId: registrationId('b2') })).status).toBe(201);
    socket.close();
    await socket.closed;
  });

  it('a different registration id is a new registration; none at all behaves as before', async () => {
    const reg = await tc.mintRegistrationToken('retry', { uses: 3 });
    const one = await tc.register(reg, { name: 'retry-c', registrationId: registrationId('c1') });
    const two = await tc.register(reg, { name: 'retry-c', registrationId: registrationId('c2') });
    const three = await tc.register(reg, { name: 'retry-c' });
    expect([one.status, two.status, three.status]).toEqual([201, 201, 201]);
    expect(new Set([one.body.runnerId, two.body.runnerId, three.body.runnerId]).size).toBe(3);
    expect(errorOf(await tc.register(reg, { name: 'retry-c' })).code).toBe('token_used_up');
  });

  it('two requests in flight with the same id make one runner and spend one use', async () => {
    const reg = await tc.mintRegistrationToken('retry', { uses: 2 });
    const id = registrationId('d');
    const answers = await Promise.all([1, 2].map(() => tc.register(reg, { name: 'retry-d', registrationId: id })));
    expect(answers.map((a) => a.status)).toEqual([201, 201]);
    expect(answers[0]!.body.runnerId).toBe(answers[1]!.body.runnerId);
    expect(await runnersNamed('retry-d')).toHaveLength(1);
    expect((await tc.register(reg, { name: 'retry-d2', registrationId: registrationId('d2') })).status).toBe(201);
    expect(errorOf(await tc.register(reg, { name: 'retry-d3' })).code).toBe('token_used_up');
  });

  it('is honoured after the token expired, but not past the 24 h window', async () => {
    const reg = await tc.mintRegistrationToken('retry', { ttl: '300ms' });
    const id = registrationId('e');
    const first = await tc.register(reg, { name: 'retry-e', registrationId: id });
    expect(first.status).toBe(201);
    await sleep(400);
    expect(errorOf(await tc.register(reg, { name: 'retry-e' })).code).toBe('token_expired');
    const retried = await tc.register(reg, { name: 'retry-e', registrationId: id });
    expect(retried.status).toBe(201);
    expect(retried.body.runnerId).toBe(first.body.runnerId);

    clockOffset = DAY + 60_000;
    try {
      const late = await tc.register(reg, { name: 'retry-e', registrationId: id });
      expect(late.status).toBe(409);
      expect(errorOf(late).message).toMatch(/over 24 h ago/);
    } finally {
      clockOffset = 0;
    }
  });

  it('refuses a malformed registration id', async () => {
    const reg = await tc.mintRegistrationToken('retry', { uses: 1 });
    const res = await tc.register(reg, { name: 'retry-f', registrationId: 'short' });
    expect(res.status).toBe(400);
    expect(errorOf(res).message).toMatch(/registrationId/);
  });
});

describe('the store, when a second insert with the same registration id gets past the lookup', () => {
  it('answers duplicate, rolls back (no second use), and the retry then finds the first runner', async () => {
    const { store, poolId, close } = storeWithPool();
    try {
      const now = Date.now();
      store.db
        .prepare("INSERT INTO registration_tokens (id, pool_id, hash, expires_at, uses_left, created_by, created_at) VALUES ('rt', ?, 'h', ?, 2, 't', 0)")
        .run(poolId, now + DAY);
      const insert = (runnerId: string) =>
        store.runners.register({
          registrationTokenId: 'rt',
          registrationId: 'same-id-0123456789',
          now,
          runner: newRunnerRow({ id: runnerId, poolId, registrationTokenId: 'rt', registeredAt: now }),
          token: { id: `tok-${runnerId}`, runnerId, hash: 'x', state: 'current', createdAt: now },
          audit: auditRow({ at: now, actor: 't', action: 'runner.register', resourceType: 'runner', resourceId: runnerId, project: 'default' }),
        });
      expect(await insert('r1')).toBe('registered');
      expect(await insert('r2')).toBe('duplicate');
      expect(store.db.prepare("SELECT uses_left FROM registration_tokens WHERE id = 'rt'").pluck().get()).toBe(1);
      expect(store.db.prepare('SELECT id FROM runners').pluck().all()).toEqual(['r1']);
      expect(store.db.prepare("SELECT id FROM runner_tokens WHERE id = 'tok-r2'").get()).toBeUndefined();

      const retried = await store.runners.retryRegistration({
        registrationTokenId: 'rt',
        poolId,
        registrationId: 'same-id-0123456789',
        registeredAfter: now - DAY,
        token: { id: 'tok-fresh', hash: 'y', state: 'current', createdAt: now },
        audit: (r) => auditRow({ at: now, actor: 't', action: 'runner.register', resourceType: 'runner', resourceId: r.id, project: 'default' }),
      });
      expect(retried).toMatchObject({ result: 'retried', runner: { id: 'r1' } });
      expect(store.db.prepare("SELECT id, state FROM runner_tokens WHERE runner_id = 'r1'").all()).toEqual([{ id: 'tok-fresh', state: 'current' }]);
    } finally {
      await close();
    }
  });
});
