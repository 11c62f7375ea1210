import { readFileSync } from 'node:fs';
import { type ApiToken, type AuditEntry, CloseCode, ROUTES, SubmitterClient } from '@rbtk/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator } from '../src/index.js';
import { rbtk } from './cli-run.js';
import { eventually, sleep, TestCoordinator, TestSocket, tempDir, testLogger } from './helpers.js';
import { shellJob, SubmitterSocket } from './jobs-helpers.js';

/*
 * API tokens against a real coordinator on port 0: create (with a ttl), list
 * without secrets, revoke (REST 401, open submitter sockets closed 4401, no
 * reconnect), expiry, the last instance admin kept, audit rows, the rbtk CLI.
 */

const errorOf = (res: { body: any }) => res.body.error as { code: string; message: string };
const idOf = (token: string) => token.split('_')[2]!;

let tc: TestCoordinator;
let jobsUrl: string;

beforeAll(async () => {
  tc = await TestCoordinator.start();
  jobsUrl = tc.url.replace(/^http/, 'ws') + ROUTES.jobsSocket;
  expect((await tc.api('POST', ROUTES.projects, { body: { name: 'team-b' } })).status).toBe(201);
  await tc.newRunner('p'); // a self-hosted pool takes jobs once a runner is registered
});

afterAll(async () => {
  await tc?.stop();
});

async function create(body: Record<string, unknown>, opts: { project?: string; token?: string } = {}): Promise<ApiToken> {
  const q = opts.project ? `?project=${opts.project}` : '';
  const res = await tc.api<ApiToken>('POST', ROUTES.apiTokens + q, { body, token: opts.token });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

describe('listing API tokens', () => {
  it("lists the project's tokens with their role, name, dates and expiry, never a secret or hash", async () => {
    const before = Date.now();
    const ci = await create({ role: 'submitter', name: 'ci', ttl: '30d' });
    const ops = await create({ role: 'admin', name: 'ops' });
    expect(ci.token).toMatch(/^rbtk_api_/);
    expect(Date.parse(ci.expiresAt!) - before).toBeGreaterThanOrEqual(30 * 86_400_000);
    expect(Date.parse(ci.expiresAt!) - Date.now()).toBeLessThanOrEqual(30 * 86_400_000);
    expect(ops.expiresAt).toBeNull();

    const res = await tc.api<ApiToken[]>('GET', ROUTES.apiTokens);
    expect(res.status).toBe(200);
    const text = JSON.stringify(res.body);
    expect(text).not.toMatch(/rbtk_api_/);
    expect(text).not.toMatch(/hash|secret/i);
    for (const t of res.body) expect(t.token).toBeUndefined();
    const byId = new Map(res.body.map((t) => [t.id, t]));
    // The instance admin sees the instance-wide first-start token too.
    expect(byId.get(idOf(tc.adminToken))).toMatchObject({ role: 'admin', project: null, name: 'instance admin', expiresAt: null });
    expect(byId.get(ci.id)).toMatchObject({ role: 'submitter', project: 'default', name: 'ci', expiresAt: ci.expiresAt, lastUsedAt: null });
    expect(byId.get(ops.id)).toMatchObject({ role: 'admin', project: 'default', name: 'ops', expiresAt: null });
    expect(res.body.map((t) => t.createdAt)).toEqual(res.body.map((t) => t.createdAt).sort());
  });

  it('records when a token was last used (at most once a minute)', async () => {
    const ci = await create({ role: 'submitter', name: 'used' });
    expect((await tc.api('GET', ROUTES.jobs, { token: ci.token })).status).toBe(200);
    const used = await eventually(async () => {
      const t = (await tc.api<ApiToken[]>('GET', ROUTES.apiTokens)).body.find((x) => x.id === ci.id);
      return t?.lastUsedAt ? t : null;
    });
    expect(Date.parse(used.lastUsedAt!)).toBeLessThanOrEqual(Date.now());
  });

  it("shows a project admin its own project's tokens only, and submitters nothing", async () => {
    const b = await create({ role: 'admin', name: 'b-admin' }, { project: 'team-b' });
    const bSub = await create({ role: 'submitter', name: 'b-ci' }, { project: 'team-b' });
    const seen = await tc.api<ApiToken[]>('GET', ROUTES.apiTokens, { token: b.token });
    expect(seen.status).toBe(200);
    expect(seen.body.map((t) => t.id).sort()).toEqual([b.id, bSub.id].sort());
    expect((await tc.api('GET', `${ROUTES.apiTokens}?project=default`, { token: b.token })).status).toBe(403);
    expect((await tc.api('GET', ROUTES.apiTokens, { token: bSub.token })).status).toBe(403);
  });
});

describe('revoking an API token', () => {
  it('answers 401 token_revoked at once, closes its open submitter sockets with 4401 and refuses a reconnect', async () => {
    const sub = await create({ role: 'submitter', name: 'leaked' });
    const raw = await SubmitterSocket.open(tc, sub.token!);
    expect((await raw.submit(shellJob('p'))).type).toBe('submitted');
    // The typed client too: it must stop, not reconnect forever.
    const client = await SubmitterClient.connect({ url: tc.url, token: sub.token! });
    await client.submit(shellJob('p'));
    const other = await SubmitterSocket.open(tc); // another token's socket stays open

    const res = await tc.api<ApiToken>('DELETE', ROUTES.apiToken(sub.id));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: sub.id, role: 'submitter', name: 'leaked' });
    expect(Date.parse(res.body.revokedAt!)).toBeLessThanOrEqual(Date.now());
    expect(res.body.token).toBeUndefined();

    expect(await raw.closed).toBe(CloseCode.Revoked);
    const said = await raw.next((e) => e.type === 'error');
    expect(said).toMatchObject({ type: 'error', code: 'token_revoked' });
    await expect(client.submit(shellJob('p'))).rejects.toMatchObject({ code: 'token_revoked' });
    await client.close();

    const rest = await tc.api('GET', ROUTES.jobs, { token: sub.token });
    expect(rest.status).toBe(401);
    expect(errorOf(rest)).toEqual({ code: 'token_revoked', message: expect.stringMatching(new RegExp(`^API token ${sub.id} was revoked at `)) });
    expect(await TestSocket.refusal(jobsUrl, sub.token!)).toMatchObject({ status: 401, body: { error: { code: 'token_revoked' } } });

    expect((await other.submit(shellJob('p'))).type).toBe('submitted');
    other.close();

    // Gone from the list; a second revoke says it was done already; an unknown id is 404.
    expect((await tc.api<ApiToken[]>('GET', ROUTES.apiTokens)).body.some((t) => t.id === sub.id)).toBe(false);
    const again = await tc.api('DELETE', ROUTES.apiToken(sub.id));
    expect(again.status).toBe(409);
    expect(errorOf(again).message).toMatch(/already revoked/);
    expect((await tc.api('DELETE', ROUTES.apiToken('NoSuchToken12345'))).status).toBe(404);

    const audit = await tc.api<AuditEntry[]>('GET', `${ROUTES.audit}?resourceType=token`);
    const row = audit.body.find((e) => e.action === 'token.revoke' && e.resourceId === sub.id);
    expect(row).toMatchObject({
      actor: `admin:${idOf(tc.adminToken)}`,
      resourceType: 'token',
      project: 'default',
      details: { role: 'submitter', name: 'leaked', instance: false, openSockets: 2 },
    });
    expect(JSON.stringify(audit.body)).not.toMatch(/rbtk_api_/);
  });

  it("lets a project admin revoke its project's tokens only", async () => {
    const b = await create({ role: 'admin' }, { project: 'team-b' });
    const bSub = await create({ role: 'submitter' }, { project: 'team-b' });
    const mine = await create({ role: 'submitter' });
    expect((await tc.api('DELETE', ROUTES.apiToken(mine.id), { token: b.token })).status).toBe(404);
    expect((await tc.api('DELETE', ROUTES.apiToken(idOf(tc.adminToken)), { token: b.token })).status).toBe(404);
    expect((await tc.api('DELETE', ROUTES.apiToken(bSub.id), { token: b.token })).status).toBe(200);
    expect((await tc.api('DELETE', ROUTES.apiToken(b.id), { token: bSub.token })).status).toBe(401);
    // Its own token, too: then it is locked out of its project, which the instance admin can mend.
    expect((await tc.api('DELETE', ROUTES.apiToken(b.id), { token: b.token })).status).toBe(200);
    expect((await tc.api('GET', ROUTES.pools, { token: b.token })).status).toBe(401);
  });
});

describe('token expiry', () => {
  it('answers 401 token_expired after the ttl and closes the open socket at expiry', async () => {
    const short = await create({ role: 'submitter', name: 'short', ttl: '1500ms' });
    expect((await tc.api('GET', ROUTES.jobs, { token: short.token })).status).toBe(200);
    const socket = await SubmitterSocket.open(tc, short.token!);
    expect((await socket.submit(shellJob('p'))).type).toBe('submitted');
    expect(await socket.closed).toBe(CloseCode.Revoked);
    expect(await socket.next((e) => e.type === 'error')).toMatchObject({ code: 'token_expired' });
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(short.expiresAt!));

    const rest = await tc.api('GET', ROUTES.jobs, { token: short.token });
    expect(rest.status).toBe(401);
    expect(errorOf(rest).code).toBe('token_expired');
    expect(errorOf(rest).message).toMatch(/expired at .*rbtk token create/);
    expect(await TestSocket.refusal(jobsUrl, short.token!)).toMatchObject({ status: 401, body: { error: { code: 'token_expired' } } });
    // Still listed (expired, not revoked), so that an operator sees what lapsed.
    expect((await tc.api<ApiToken[]>('GET', ROUTES.apiTokens)).body.find((t) => t.id === short.id)).toMatchObject({ name: 'short' });
  });

  it('refuses a ttl that is no duration, is 0 or is over ten years', async () => {
    for (const ttl of ['soon', '0s', '3651d']) {
      expect((await tc.api('POST', ROUTES.apiTokens, { body: { role: 'submitter', ttl } })).status, ttl).toBe(400);
    }
  });
});

describe('the instance admin token', () => {
  it('cannot be revoked while it is the last one; an instance-wide replacement can take over', async () => {
    const own = await TestCoordinator.start();
    try {
      const firstId = idOf(own.adminToken);
      const last = await own.api('DELETE', ROUTES.apiToken(firstId));
      expect(last.status).toBe(409);
      expect(errorOf(last).message).toMatch(/last instance admin token .* lock everyone out.*--instance/);
      expect((await own.api('GET', ROUTES.pools)).status).toBe(200);

      // Only the instance admin makes instance-wide tokens, and only admin ones.
      const projectAdmin = (await own.api('POST', ROUTES.apiTokens, { body: { role: 'admin' } })).body.token as string;
      expect((await own.api('POST', ROUTES.apiTokens, { body: { role: 'admin', instance: true }, token: projectAdmin })).status).toBe(403);
      expect((await own.api('POST', ROUTES.apiTokens, { body: { role: 'submitter', instance: true } })).status).toBe(400);
      const next = await own.api<ApiToken>('POST', ROUTES.apiTokens, { body: { role: 'admin', name: 'rotated', instance: true } });
      expect(next.status).toBe(201);
      expect(next.body).toMatchObject({ role: 'admin', project: null, name: 'rotated' });

      expect((await own.api('DELETE', ROUTES.apiToken(firstId), { token: next.body.token })).status).toBe(200);
      expect(errorOf(await own.api('GET', ROUTES.pools)).code).toBe('token_revoked');
      expect((await own.api('GET', ROUTES.projects, { token: next.body.token })).status).toBe(200);
      expect((await own.api('DELETE', ROUTES.apiToken(next.body.id), { token: next.body.token })).status).toBe(409);
      const audit = await own.api<AuditEntry[]>('GET', `${ROUTES.audit}?resourceType=token`, { token: next.body.token });
      expect(audit.body.find((e) => e.action === 'token.revoke')).toMatchObject({
        resourceId: firstId,
        actor: `admin:${next.body.id}`,
        project: 'default',
        details: { instance: true },
      });
    } finally {
      await own.stop();
    }
  });

  it('counts only unexpired instance tokens as a way in; when all have expired, a restart writes a new admin.token', async () => {
    const dir = tempDir();
    let clock = Date.UTC(2030, 0, 1);
    const start = () => startCoordinator({ dataDir: dir.dir, port: 0, logger: testLogger(), now: () => clock });
    let c = await start();
    try {
      const first = readFileSync(c.adminTokenFile, 'utf8').trim();
      const call = (method: string, path: string, token: string, body?: unknown) =>
        fetch(c.url + path, {
          method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      const made = await call('POST', ROUTES.apiTokens, first, { role: 'admin', instance: true, ttl: '1h' });
      const temp = (await made.json()) as ApiToken;
      expect((await call('DELETE', ROUTES.apiToken(idOf(first)), temp.token!)).status).toBe(200);
      clock += 2 * 3_600_000;
      expect((await call('GET', ROUTES.pools, temp.token!)).status).toBe(401);
      await c.stop();
      c = await start();
      const fresh = readFileSync(c.adminTokenFile, 'utf8').trim();
      expect(fresh).not.toBe(first);
      expect((await call('GET', ROUTES.pools, fresh)).status).toBe(200);
    } finally {
      await c.stop();
      dir.cleanup();
    }
  });
});

describe('rbtk token', () => {
  const run = (args: string[], token = tc.adminToken) => rbtk(args, { env: { RBTK_URL: tc.url, RBTK_TOKEN: token } });

  it('create --ttl prints the token alone and says when it expires', async () => {
    const res = await run(['token', 'create', '--role', 'submitter', '--name', 'cli-ci', '--ttl', '30d']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^rbtk_api_\w+_[\w-]+\n$/);
    expect(res.stderr).toMatch(/^submitter token \w+ for project default, expires \d{4}-\d\d-\d\dT[\d:]+Z: store it now/);
    const bad = await run(['token', 'create', '--role', 'submitter', '--ttl', 'soon']);
    expect(bad.code).toBe(2);
  });

  it('list prints a table and --json the tokens, neither with a secret', async () => {
    const table = await run(['token', 'list']);
    expect(table.code, table.stderr).toBe(0);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+ROLE\s+PROJECT\s+NAME\s+CREATED\s+LAST USED\s+EXPIRES$/);
    expect(rows).toContainEqual(expect.stringMatching(new RegExp(`^${idOf(tc.adminToken)}\\s+admin\\s+\\(instance\\)\\s+instance admin\\s+\\S+\\s+\\S+ ago\\s+never$`)));
    expect(rows).toContainEqual(expect.stringMatching(/^\w+\s+submitter\s+default\s+cli-ci\s+\S+Z\s+never\s+in (29|30)d$/));
    expect(rows).toContainEqual(expect.stringMatching(/^\w+\s+submitter\s+default\s+short\s+\S+Z\s+\S+ ago\s+expired \d+s ago$/));
    expect(table.stdout).not.toMatch(/rbtk_api_/);

    const json = await run(['token', 'list', '--json']);
    expect(json.code).toBe(0);
    expect(json.stdout).not.toMatch(/rbtk_api_/);
    const listed = JSON.parse(json.stdout) as ApiToken[];
    expect(listed.find((t) => t.name === 'cli-ci')).toMatchObject({ role: 'submitter', project: 'default', lastUsedAt: null });
  });

  it('revoke prints what it revoked, --json the token; the token then exits 5; the last instance admin exits 1', async () => {
    const made = JSON.parse((await run(['token', 'create', '--role', 'submitter', '--name', 'to-go', '--json'])).stdout) as ApiToken;
    const res = await run(['token', 'revoke', made.id]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe(`revoked submitter token ${made.id} (to-go) of project default\n`);
    const refused = await run(['job', 'list'], made.token!);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/^rbtk: API token \w+ was revoked at /);

    const other = JSON.parse((await run(['token', 'create', '--role', 'admin', '--json'])).stdout) as ApiToken;
    const asJson = await run(['token', 'revoke', other.id, '--json']);
    expect(asJson.code).toBe(0);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ id: other.id, revokedAt: expect.any(String) });

    const last = await run(['token', 'revoke', idOf(tc.adminToken)]);
    expect(last.code).toBe(1);
    expect(last.stderr).toMatch(/^rbtk: API token \w+ is the last instance admin token/);
    expect((await run(['token', 'revoke', 'NoSuchToken12345'])).code).toBe(4);
  });

  it('an expired token exits 5 and says so', async () => {
    const made = JSON.parse((await run(['token', 'create', '--role', 'submitter', '--ttl', '200ms', '--json'])).stdout) as ApiToken;
    await sleep(Math.max(0, Date.parse(made.expiresAt!) - Date.now()) + 50);
    const res = await run(['job', 'list'], made.token!);
    expect(res.code).toBe(5);
    expect(res.stderr).toMatch(/^rbtk: API token \w+ expired at .*\(token from --token or RBTK_TOKEN\)\n$/);
  });
});
