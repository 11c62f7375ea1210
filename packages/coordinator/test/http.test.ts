import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ROUTES } from '@rbtk/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequestListener } from '../src/http/server.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { JobService } from '../src/jobs/job-service.js';
import { CoordinatorMetrics } from '../src/metrics/coordinator-metrics.js';
import { SessionRegistry } from '../src/ws/sessions.js';
import { sleep, TestCoordinator, TestSocket, tempDir, testLogger } from './helpers.js';

let tc: TestCoordinator;
let otherAdmin: string; // admin token of project "team-b"
let submitter: string; // submitter token of project "default"

beforeAll(async () => {
  tc = await TestCoordinator.start();
  expect((await tc.api('POST', ROUTES.projects, { body: { name: 'team-b' } })).status).toBe(201);
  otherAdmin = (await tc.api('POST', `${ROUTES.apiTokens}?project=team-b`, { body: { role: 'admin', name: 'b' } })).body.token;
  submitter = (await tc.api('POST', ROUTES.apiTokens, { body: { role: 'submitter' } })).body.token;
});

afterAll(async () => {
  await tc.stop();
});

const errorOf = (res: { body: any }) => res.body.error as { code: string; message: string };

describe('health', () => {
  it('answers without a token', async () => {
    expect(await tc.api('GET', ROUTES.health, { token: null })).toEqual({ status: 200, body: { ok: true } });
    expect(await tc.api('GET', ROUTES.ready, { token: null })).toEqual({ status: 200, body: { ok: true } });
    expect((await tc.api('GET', ROUTES.health, { token: submitter })).status).toBe(200);
  });

  it('unknown routes are 404 not_found', async () => {
    const res = await tc.api('GET', '/v1/nope');
    expect(res.status).toBe(404);
    expect(errorOf(res)).toEqual({ code: 'not_found', message: 'no route for GET /v1/nope' });
    expect((await tc.api('PUT', ROUTES.pools)).status).toBe(404);
  });
});

describe('authentication and authorization', () => {
  it('401 without a token or with a wrong one', async () => {
    const none = await tc.api('GET', ROUTES.pools, { token: null });
    expect(none.status).toBe(401);
    expect(errorOf(none).code).toBe('unauthorized');
    const [, , id] = tc.adminToken.split('_');
    const wrongSecret = await tc.api('GET', ROUTES.pools, { token: `rbtk_api_${id}_${'A'.repeat(43)}` });
    expect(wrongSecret.status).toBe(401);
    expect(errorOf(wrongSecret)).toEqual({ code: 'unauthorized', message: 'API token is unknown' });
    expect((await tc.api('GET', ROUTES.pools, { token: 'garbage' })).status).toBe(401);
  });

  it("403 for another project's token", async () => {
    const res = await tc.api('GET', `${ROUTES.pools}?project=default`, { token: otherAdmin });
    expect(res.status).toBe(403);
    expect(errorOf(res)).toEqual({ code: 'forbidden', message: 'this token belongs to project team-b' });
    // Its own project is the default for it.
    expect(await tc.api('GET', ROUTES.pools, { token: otherAdmin })).toEqual({ status: 200, body: [] });
  });

  it('403 for submitters on every admin endpoint', async () => {
    for (const [method, route] of [
      ['GET', ROUTES.pools],
      ['POST', ROUTES.pools],
      ['GET', ROUTES.projects],
      ['GET', ROUTES.runners],
      ['POST', ROUTES.apiTokens],
      ['GET', ROUTES.audit],
    ] as const) {
      const res = await tc.api(method, route, { token: submitter, body: method === 'POST' ? {} : undefined });
      expect(res.status, `${method} ${route}`).toBe(403);
      expect(errorOf(res).code).toBe('forbidden');
    }
  });

  it('404 for an unknown project', async () => {
    const res = await tc.api('GET', `${ROUTES.pools}?project=ghost`);
    expect(res.status).toBe(404);
    expect(errorOf(res).message).toBe('project "ghost" not found');
  });
});

describe('projects', () => {
  it('lists, creates, refuses duplicates and project admins', async () => {
    const list = await tc.api('GET', ROUTES.projects);
    expect(list.body.map((p: { name: string }) => p.name)).toEqual(['default', 'team-b']);
    expect((await tc.api('GET', ROUTES.projects, { token: otherAdmin })).body.map((p: { name: string }) => p.name)).toEqual([
      'team-b',
    ]);
    const dup = await tc.api('POST', ROUTES.projects, { body: { name: 'team-b' } });
    expect(dup.status).toBe(409);
    expect(errorOf(dup)).toEqual({ code: 'conflict', message: 'project "team-b" already exists' });
    const byProjectAdmin = await tc.api('POST', ROUTES.projects, { token: otherAdmin, body: { name: 'team-c' } });
    expect(byProjectAdmin.status).toBe(403);
    const bad = await tc.api('POST', ROUTES.projects, { body: { name: 'Bad Name' } });
    expect(bad.status).toBe(400);
    expect(errorOf(bad).message).toMatch(/^invalid request body: name: /);
  });
});

describe('request bodies', () => {
  it('400 invalid_json on malformed JSON', async () => {
    const res = await tc.api('POST', ROUTES.pools, { rawBody: '{"name": ' });
    expect(res.status).toBe(400);
    expect(errorOf(res).code).toBe('invalid_json');
  });

  it('400 bad_request naming the field', async () => {
    const res = await tc.api('POST', ROUTES.pools, { body: { name: 'ok', airgapped: 'yes' } });
    expect(res.status).toBe(400);
    expect(errorOf(res).code).toBe('bad_request');
    expect(errorOf(res).message).toMatch(/airgapped/);
    const extra = await tc.api('POST', ROUTES.pools, { body: { name: 'ok', colour: 'red' } });
    expect(errorOf(extra).message).toMatch(/colour/);
    const missing = await tc.api('POST', ROUTES.pools, { body: {} });
    expect(errorOf(missing).message).toMatch(/name/);
  });

  it('413 body_too_large past 1 MiB, and the server keeps serving', async () => {
    const res = await tc.api('POST', ROUTES.pools, { rawBody: JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 10) }) });
    expect(res.status).toBe(413);
    expect(errorOf(res).code).toBe('body_too_large');
    expect((await tc.api('GET', ROUTES.health)).status).toBe(200);
  });
});

describe('pools', () => {
  it('create, get, list, conflict, not found', async () => {
    const created = await tc.api('POST', ROUTES.pools, { body: { name: 'build', tags: { env: 'prod' } } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'build',
      project: 'default',
      type: 'self-hosted',
      status: 'active',
      tags: { env: 'prod' },
      airgapped: false,
      runners: { online: 0, draining: 0, offline: 0 },
    });
    expect((await tc.api('GET', ROUTES.pool('build'))).body).toEqual(created.body);
    expect((await tc.api('GET', ROUTES.pools)).body.map((p: { name: string }) => p.name)).toContain('build');
    const dup = await tc.api('POST', ROUTES.pools, { body: { name: 'build' } });
    expect(dup.status).toBe(409);
    expect(errorOf(dup).code).toBe('conflict');
    // Same name in another project is fine.
    expect((await tc.api('POST', ROUTES.pools, { token: otherAdmin, body: { name: 'build' } })).status).toBe(201);
    const missing = await tc.api('GET', ROUTES.pool('nope'));
    expect(missing.status).toBe(404);
    expect(errorOf(missing)).toEqual({ code: 'not_found', message: 'pool "nope" not found in project "default"' });
    expect((await tc.api('DELETE', ROUTES.pool('nope'))).status).toBe(404);
    expect((await tc.api('POST', ROUTES.poolTokens('nope'), { body: {} })).status).toBe(404);
  });

  it('delete is refused while a runner is online, allowed once it is gone', async () => {
    await tc.createPool('busy');
    const runner = await tc.newRunner('busy');
    const socket = await TestSocket.open(tc.wsUrl, runner.token);
    await socket.hello();
    const refused = await tc.api('DELETE', ROUTES.pool('busy'));
    expect(refused.status).toBe(409);
    expect(errorOf(refused).message).toBe('pool busy still has 1 online runner(s) and 0 job(s) in flight — drain it first');
    expect((await tc.api('POST', ROUTES.runnerRevoke(runner.runnerId))).status).toBe(200);
    expect((await socket.closed).code).toBe(4401);
    expect((await tc.api('DELETE', ROUTES.pool('busy'))).status).toBe(204);
    expect((await tc.api('GET', ROUTES.pool('busy'))).status).toBe(404);
  });

  it('delete removes offline runners', async () => {
    const runner = await tc.newRunner('quiet');
    expect((await tc.api('DELETE', ROUTES.pool('quiet'))).status).toBe(204);
    expect((await tc.api('GET', ROUTES.runner(runner.runnerId))).status).toBe(404);
  });
});

describe('registration', () => {
  it('mints registration tokens and registers runners, counting uses', async () => {
    await tc.createPool('reg');
    const minted = await tc.api('POST', ROUTES.poolTokens('reg'), { body: { ttl: '1h', uses: 2 } });
    expect(minted.status).toBe(201);
    expect(minted.body).toMatchObject({ pool: 'reg', project: 'default', usesLeft: 2 });
    expect(minted.body.token).toMatch(/^rbtk_reg_[A-Za-z0-9]{16}_[A-Za-z0-9_-]{43}$/);
    const token = minted.body.token as string;

    const first = await tc.register(token, { name: 'h1', labels: { gpu: 'a100' } });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ name: 'h1', pool: 'reg', project: 'default', heartbeatIntervalMs: 15_000 });
    expect(first.body.token).toMatch(/^rbtk_run_/);
    expect((await tc.register(token, { name: 'h2' })).status).toBe(201);
    const third = await tc.register(token, { name: 'h3' });
    expect(third.status).toBe(401);
    expect(errorOf(third)).toEqual({ code: 'token_used_up', message: 'registration token has no uses left' });

    const runner = await tc.api('GET', ROUTES.runner(first.body.runnerId));
    expect(runner.body).toMatchObject({ name: 'h1', status: 'OFFLINE', connected: false, labels: { gpu: 'a100' }, lastHeartbeatAt: null });
    const audit = await tc.api('GET', `${ROUTES.audit}?resourceType=runner`);
    expect(audit.body.at(-1)).toMatchObject({ action: 'runner.register', actor: `registration:${minted.body.id}` });
  });

  it('refuses unknown and expired tokens', async () => {
    await tc.createPool('exp');
    const unknown = await tc.register(`rbtk_reg_${'a'.repeat(16)}_${'b'.repeat(43)}`);
    expect(unknown.status).toBe(401);
    expect(errorOf(unknown)).toEqual({ code: 'token_unknown', message: 'registration token is unknown' });
    expect((await tc.register('not-a-token')).status).toBe(401);
    expect((await tc.register(tc.adminToken)).status).toBe(401);

    const token = await tc.mintRegistrationToken('exp', { ttl: '1ms' });
    await sleep(10);
    const expired = await tc.register(token);
    expect(expired.status).toBe(401);
    expect(errorOf(expired).code).toBe('token_expired');
    expect(errorOf(expired).message).toMatch(/^registration token expired at \d{4}-\d\d-\d\dT/);
    expect((await tc.api('POST', ROUTES.poolTokens('exp'), { body: { ttl: 'soon' } })).status).toBe(400);
    // An expiry past what a date holds (found by the REST fuzzer as a 500): refused, and nothing minted.
    const tokensBefore = (await tc.api('GET', ROUTES.audit)).body.length;
    const forever = await tc.api('POST', ROUTES.poolTokens('exp'), { body: { ttl: '99999999d' } });
    expect(forever.status).toBe(400);
    expect(errorOf(forever).message).toMatch(/ttl: at most 3650d/);
    expect((await tc.api('GET', ROUTES.audit)).body.length).toBe(tokensBefore);
    expect((await tc.api('POST', ROUTES.poolTokens('exp'), { body: { ttl: '3650d' } })).status).toBe(201);
  });

  it('air-gapped pools admit only air-gapped runners, and a refusal consumes no use', async () => {
    await tc.createPool('vault', { airgapped: true });
    const minted = await tc.api('POST', ROUTES.poolTokens('vault'), { body: { uses: 1 } });
    const refused = await tc.register(minted.body.token, { airgapped: false });
    expect(refused.status).toBe(403);
    expect(errorOf(refused)).toEqual({
      code: 'airgapped_required',
      message: 'pool vault is air-gapped: only runners registered with --airgapped may join',
    });
    expect((await tc.register(minted.body.token, { airgapped: true })).status).toBe(201);
  });
});

describe('runners', () => {
  it('lists (with pool filter), gets, hides other projects, revokes', async () => {
    const a = await tc.newRunner('list-a', 'a1');
    await tc.newRunner('list-b', 'b1');
    const onlyA = await tc.api('GET', `${ROUTES.runners}?pool=list-a`);
    expect(onlyA.body.map((r: { name: string }) => r.name)).toEqual(['a1']);
    expect((await tc.api('GET', ROUTES.runners)).body.length).toBeGreaterThanOrEqual(2);
    expect((await tc.api('GET', `${ROUTES.runners}?pool=ghost`)).status).toBe(404);
    expect((await tc.api('GET', ROUTES.runner(a.runnerId))).body).toMatchObject({ id: a.runnerId, pool: 'list-a' });
    expect((await tc.api('GET', ROUTES.runner(a.runnerId), { token: otherAdmin })).status).toBe(404);
    expect((await tc.api('POST', ROUTES.runnerRevoke(a.runnerId), { token: otherAdmin })).status).toBe(404);
    expect((await tc.api('GET', ROUTES.runner('nope'))).status).toBe(404);

    const revoked = await tc.api('POST', ROUTES.runnerRevoke(a.runnerId));
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ id: a.runnerId, name: 'a1', pool: 'list-a' });
    expect((await tc.api('GET', ROUTES.runner(a.runnerId))).status).toBe(404);
    expect((await tc.api('POST', ROUTES.runnerRevoke(a.runnerId))).status).toBe(404);
    expect(await TestSocket.refusal(tc.wsUrl, a.token)).toMatchObject({ status: 401, body: { error: { code: 'token_revoked' } } });
  });
});

describe('api tokens and audit', () => {
  it('creates API tokens in the selected project', async () => {
    const res = await tc.api('POST', `${ROUTES.apiTokens}?project=team-b`, { body: { role: 'submitter', name: 'ci' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ role: 'submitter', project: 'team-b', name: 'ci' });
    expect(res.body.token).toMatch(/^rbtk_api_/);
    expect((await tc.api('POST', ROUTES.apiTokens, { body: { role: 'root' } })).status).toBe(400);
  });

  it('lists the latest entries ascending, filtered, never with a secret', async () => {
    const all = await tc.api('GET', ROUTES.audit);
    expect(all.status).toBe(200);
    const ids = all.body.map((e: { id: number }) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(all.body[0]).toMatchObject({ action: 'project.create', actor: 'system', resourceId: 'default' });
    const actions = new Set(all.body.map((e: { action: string }) => e.action));
    for (const a of ['pool.create', 'pool.delete', 'token.mint', 'token.create', 'runner.register', 'runner.revoke']) {
      expect(actions, a).toContain(a);
    }
    expect(JSON.stringify(all.body)).not.toMatch(/rbtk_(api|reg|run)_/);
    const mint = all.body.find((e: { action: string }) => e.action === 'token.mint');
    expect(Object.keys(mint.details).sort()).toEqual(['pool', 'ttl', 'uses']);
    expect(mint.actor).toMatch(/^admin:/);

    const pools = await tc.api('GET', `${ROUTES.audit}?resourceType=pool&limit=2`);
    expect(pools.body).toHaveLength(2);
    expect(pools.body.every((e: { resourceType: string }) => e.resourceType === 'pool')).toBe(true);
    expect(pools.body[1].id).toBe(Math.max(...all.body.filter((e: any) => e.resourceType === 'pool').map((e: any) => e.id)));
    expect((await tc.api('GET', `${ROUTES.audit}?resourceType=job`)).status).toBe(400);
    expect((await tc.api('GET', `${ROUTES.audit}?limit=0`)).status).toBe(400);
    // team-b sees only its own rows.
    const b = await tc.api('GET', ROUTES.audit, { token: otherAdmin });
    expect(b.body.every((e: { project: string }) => e.project === 'team-b')).toBe(true);
  });
});

describe('unexpected errors', () => {
  it('answer 500 internal with a generic message, and the server keeps serving', async () => {
    const dir = tempDir();
    const store = SqliteStore.open(`${dir.dir}/x.db`);
    const ctx = {
      store,
      sessions: new SessionRegistry(),
      log: testLogger(),
      timings: { heartbeatIntervalMs: 1000, offlineAfterMs: 1000, reapAfterMs: 1000, tokenRotationMs: 0, acceptTimeoutMs: 10_000 },
      jobs: new JobService({ store, log: testLogger(), now: Date.now, acceptTimeoutMs: 10_000 }),
      metrics: new CoordinatorMetrics({ store, sessions: new SessionRegistry(), now: Date.now }),
      now: Date.now,
    };
    const server = createServer(
      createRequestListener(ctx, [
        { method: 'GET', path: '/boom', handler: async () => { throw new Error('disk on fire at /secret/path'); } },
        { method: 'GET', path: '/fine', handler: async () => ({ status: 200, body: { ok: true } }) },
      ]),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const res = await fetch(`${base}/boom`);
      expect(res.status).toBe(500);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('internal');
      expect(body.error.message).not.toMatch(/disk|secret/);
      expect((await fetch(`${base}/fine`)).status).toBe(200);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await store.close();
      dir.cleanup();
    }
  });
});
