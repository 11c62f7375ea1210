import { createServer, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry, Pool, RegistrationToken, Runner } from '@rbtk/protocol';
import { rbtk } from './cli-run.js';

/**
 * Output formats and error mapping of the real `rbtk` bin against a stub that answers
 * with canned protocol documents, including the answers a real coordinator should never
 * give (a proxy's 502 page, a body that breaks the schema).
 */
const TOKEN = 'rbtk_api_abcdefgh12345678_secretsecretsecret';
const now = Date.now();
const iso = (agoMs: number) => new Date(now - agoMs).toISOString();

const gpu: Pool = {
  name: 'gpu', project: 'default', type: 'self-hosted', status: 'active', tags: { env: 'prod', gpu: 'a100' }, airgapped: true,
  allowNonAirgappedJobs: false, dockerNetwork: null,
  runners: { online: 2, draining: 0, offline: 1 }, createdAt: iso(60_000), updatedAt: iso(1_000),
};
const cpu: Pool = { ...gpu, name: 'cpu-builders', tags: {}, airgapped: false, runners: { online: 0, draining: 0, offline: 0 } };
const runner: Runner = {
  id: 'r_0123456789abcdef', name: 'host-a', pool: 'gpu', project: 'default', status: 'ONLINE', labels: { gpus: '8' },
  airgapped: true, connected: true, agentVersion: '0.1.0', registeredAt: iso(3_600_000), lastHeartbeatAt: iso(3_000),
  host: { hostname: 'host-a', os: 'linux', arch: 'x64', cpus: 64, memoryBytes: 512 * 1024 ** 3 },
  gpus: [], gpuUsable: false, gpuUnusableReason: null, drainReason: null,
};
const silent: Runner = { ...runner, id: 'r_fedcba9876543210', name: 'host-b', status: 'OFFLINE', connected: false, labels: {}, lastHeartbeatAt: null, host: null };
const minted: RegistrationToken = {
  id: 'tok0123456789abc', pool: 'gpu', project: 'default', expiresAt: iso(-3_600_000), usesLeft: 3,
  token: 'rbtk_reg_tok0123456789abc_abcdefghijklmnopqrstuvwxyz012345',
};
const audit: AuditEntry[] = [
  { id: 1, at: iso(5_000), actor: 'admin:a1', action: 'pool.create', resourceType: 'pool', resourceId: 'gpu', project: 'default', details: {} },
  { id: 2, at: iso(4_000), actor: 'admin:a1', action: 'token.mint', resourceType: 'token', resourceId: 'tok0123456789abc', project: 'default', details: { pool: 'gpu', uses: 3 } },
];

function send(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) return void res.writeHead(status).end();
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
const fresh = (r: Runner): Runner => ({ ...r, lastHeartbeatAt: new Date(Date.now() - 3_000).toISOString() });
const error = (code: string, message: string) => ({ error: { code, message } });

let server: Server;
let url = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    const auth = req.headers.authorization;
    if (auth === 'Bearer submitter') return send(res, 403, error('forbidden', 'this token may not manage pools'));
    if (auth !== `Bearer ${TOKEN}`) return send(res, 401, error('unauthorized', 'unknown API token'));
    const route = `${req.method} ${req.url}`;
    switch (route) {
      case 'GET /v1/pools': return send(res, 200, [gpu, cpu]);
      case 'GET /v1/pools/gpu': return send(res, 200, gpu);
      case 'DELETE /v1/pools/gpu': return send(res, 204);
      case 'DELETE /v1/pools/busy': return send(res, 409, error('conflict', 'pool busy still has 2 online runner(s) — drain it first'));
      case 'POST /v1/pools/gpu/tokens': return send(res, 201, minted);
      // Heartbeat ages are made per request, so "3s ago" holds however slow the test machine is.
      case 'GET /v1/runners': return send(res, 200, [fresh(runner), silent]);
      case 'GET /v1/runners?pool=empty': return send(res, 200, []);
      case 'GET /v1/runners/r_0123456789abcdef': return send(res, 200, fresh(runner));
      case 'GET /v1/audit?limit=2': return send(res, 200, audit);
      case 'GET /v1/pools/proxied': return res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad Gateway</h1>');
      case 'GET /v1/pools/broken': return send(res, 200, { ...gpu, runners: 'many' });
      default: return send(res, 404, error('not_found', `no route ${route}`));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.close();
  await once(server, 'close');
});

const run = (args: string[], token = TOKEN) => rbtk(args, { env: { RBTK_URL: url, RBTK_TOKEN: token } });

describe('human output', () => {
  it('pool list is an aligned table', async () => {
    const res = await run(['pool', 'list']);
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^NAME\s+TYPE\s+STATUS\s+ONLINE\s+DRAINING\s+OFFLINE\s+AIRGAPPED\s+TAGS$/);
    expect(lines[1]).toMatch(/^gpu\s+self-hosted\s+active\s+2\s+0\s+1\s+yes\s+env=prod,gpu=a100$/);
    expect(lines[2]).toMatch(/^cpu-builders\s+self-hosted\s+active\s+0\s+0\s+0\s+no\s+-$/);
    // Aligned: every column starts at the same offset on every line.
    expect(lines[1]!.indexOf('self-hosted')).toBe(lines[0]!.indexOf('TYPE'));
    expect(lines[2]!.indexOf('self-hosted')).toBe(lines[0]!.indexOf('TYPE'));
  });

  it('runner list shows the last heartbeat as an age', async () => {
    const res = await run(['runner', 'list']);
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+POOL\s+STATUS\s+LAST HEARTBEAT\s+LABELS$/);
    expect(lines[1]).toMatch(/^r_0123456789abcdef\s+host-a\s+gpu\s+ONLINE\s+3s ago\s+gpus=8$/);
    expect(lines[2]).toMatch(/^r_fedcba9876543210\s+host-b\s+gpu\s+OFFLINE\s+never\s+-$/);
  });

  it('an empty list prints nothing on stdout and says so on stderr', async () => {
    const res = await run(['runner', 'list', '--pool', 'empty']);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe('');
    expect(res.stderr).toBe('no runners in pool empty\n');
  });

  it('show prints key: value lines', async () => {
    const pool = await run(['pool', 'show', 'gpu']);
    expect(pool.code).toBe(0);
    expect(pool.stdout).toMatch(/^name:\s+gpu$/m);
    expect(pool.stdout).toMatch(/^runners:\s+2 online, 0 draining, 1 offline$/m);
    const r = await run(['runner', 'show', 'r_0123456789abcdef']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^last heartbeat:\s+3s ago \(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$/m);
    expect(r.stdout).toMatch(/^memory:\s+512\.0 GiB$/m);
  });

  it('pool token prints the token alone on stdout', async () => {
    const res = await run(['pool', 'token', 'gpu', '--ttl', '1h', '--uses', '3']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe(`${minted.token}\n`);
    expect(res.stderr).toContain('3 use(s)');
  });

  it('audit rows show actor, action, resource and details', async () => {
    const res = await run(['audit', '--limit', '2']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^2\s+\S+Z\s+admin:a1\s+token\.mint\s+token\/tok0123456789abc\s+pool=gpu uses=3$/m);
  });

  it('delete confirms in one line', async () => {
    const res = await run(['pool', 'delete', 'gpu']);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe('deleted pool gpu\n');
  });
});

describe('--json', () => {
  it('prints the API document, pretty-printed', async () => {
    const res = await run(['pool', 'list', '--json']);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toEqual([gpu, cpu]);
    expect(res.stdout).toBe(`${JSON.stringify([gpu, cpu], null, 2)}\n`);
  });

  it('pool token --json prints the RegistrationToken with its secret', async () => {
    const res = await run(['--json', 'pool', 'token', 'gpu']);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toEqual(minted);
    expect(res.stderr).toBe('');
  });

  it('delete --json prints one small document', async () => {
    const res = await run(['pool', 'delete', 'gpu', '--json']);
    expect(JSON.parse(res.stdout)).toEqual({ name: 'gpu', deleted: true });
  });

  it('errors stay on stderr', async () => {
    const res = await run(['pool', 'show', 'nope', '--json']);
    expect(res.code).toBe(4);
    expect(res.stdout).toBe('');
    expect(res.stderr).toBe('rbtk: no route GET /v1/pools/nope\n');
  });
});

describe('errors and exit codes', () => {
  it('404 exits 4 with the server message', async () => {
    const res = await run(['runner', 'show', 'r_unknown']);
    expect(res.code).toBe(4);
    expect(res.stderr).toBe('rbtk: no route GET /v1/runners/r_unknown\n');
  });

  it('401 exits 5 and says where the token came from', async () => {
    const res = await run(['pool', 'list'], 'rbtk_api_wrong');
    expect(res.code).toBe(5);
    expect(res.stderr).toBe('rbtk: unknown API token (token from --token or RBTK_TOKEN)\n');
  });

  it('403 exits 5', async () => {
    const res = await run(['pool', 'list'], 'submitter');
    expect(res.code).toBe(5);
    expect(res.stderr).toBe('rbtk: this token may not manage pools\n');
  });

  it('409 exits 1 with the server message', async () => {
    const res = await run(['pool', 'delete', 'busy']);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe('rbtk: pool busy still has 2 online runner(s) — drain it first\n');
  });

  it('a proxy 502 without an rbtk body counts as unreachable (3)', async () => {
    const res = await run(['pool', 'show', 'proxied']);
    expect(res.code).toBe(3);
    expect(res.stderr).toContain('HTTP 502');
  });

  it('an answer that breaks the protocol exits 1 and names the field', async () => {
    const res = await run(['pool', 'show', 'broken']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/does not match the protocol at runners/);
  });
});
