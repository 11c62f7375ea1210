import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES, type ApiToken, type AuditEntry, type Pool, type RegisterResponse, type RegistrationToken, type Runner } from '@rbtk/protocol';
import { startCoordinator, type Coordinator } from '../src/index.js';
import { rbtk } from './cli-run.js';

/**
 * The real `rbtk` bin against a real coordinator on port 0. The data dir is `<tmp>/.data`,
 * so running rbtk from <tmp> without a token exercises the ./.data/admin.token fallback.
 */
let dir = '';
let coordinator: Coordinator;
let adminToken = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rbtk-cli-e2e-'));
  coordinator = await startCoordinator({ dataDir: join(dir, '.data'), port: 0, logLevel: 'silent' });
  adminToken = (await readFile(coordinator.adminTokenFile, 'utf8')).trim();
});

afterAll(async () => {
  await coordinator?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  rbtk(args, { env: { RBTK_URL: coordinator.url, RBTK_TOKEN: adminToken, ...env } });

async function json<T>(args: string[], env: NodeJS.ProcessEnv = {}): Promise<T> {
  const res = await run([...args, '--json'], env);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as T;
}

/** What `rbtk-runner register` does, without the agent: the CLI only needs a runner to exist. */
async function register(regToken: string, name: string, airgapped = true): Promise<RegisterResponse> {
  const res = await fetch(new URL(ROUTES.register, coordinator.url), {
    method: 'POST',
    headers: { authorization: `Bearer ${regToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, labels: { gpus: '8' }, airgapped }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as RegisterResponse;
}

describe('pools', () => {
  it('creates a pool and refuses a second one of the same name (exit 1)', async () => {
    const res = await run(['pool', 'create', 'gpu', '--tag', 'env=prod', '--tag', 'gpu=a100', '--airgapped']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe('created pool gpu (self-hosted, air-gapped) in project default\n');
    const again = await run(['pool', 'create', 'gpu']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^rbtk: .*gpu.*already exists/);
  });

  it('lists pools as a table and as JSON', async () => {
    const table = await run(['pool', 'list']);
    expect(table.code, table.stderr).toBe(0);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^NAME\s+TYPE\s+STATUS\s+ONLINE\s+DRAINING\s+OFFLINE\s+AIRGAPPED\s+TAGS$/);
    expect(rows).toContainEqual(expect.stringMatching(/^gpu\s+self-hosted\s+active\s+0\s+0\s+0\s+yes\s+env=prod,gpu=a100$/));
    const pools = await json<Pool[]>(['pool', 'list']);
    expect(pools.find((p) => p.name === 'gpu')).toMatchObject({ project: 'default', airgapped: true, tags: { env: 'prod', gpu: 'a100' } });
  });

  it('shows a pool; an unknown one exits 4 with the coordinator\'s message', async () => {
    const show = await run(['pool', 'show', 'gpu']);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^airgapped:\s+yes$/m);
    const missing = await run(['pool', 'show', 'nope']);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toBe('rbtk: pool "nope" not found in project "default"\n');
    expect(missing.stdout).toBe('');
  });

  it('deletes a pool, then it is gone (exit 4)', async () => {
    expect((await run(['pool', 'create', 'scratch'])).code).toBe(0);
    const del = await run(['pool', 'delete', 'scratch']);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toBe('deleted pool scratch\n');
    expect((await run(['pool', 'show', 'scratch'])).code).toBe(4);
    expect((await run(['pool', 'delete', 'scratch'])).code).toBe(4);
  });
});

describe('registration tokens and runners', () => {
  let runnerId = '';

  it('pool token prints only the token, and it registers a runner', async () => {
    const res = await run(['pool', 'token', 'gpu', '--ttl', '10m', '--uses', '2']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^rbtk_reg_[A-Za-z0-9]+_[A-Za-z0-9_-]+\n$/);
    runnerId = (await register(res.stdout.trim(), 'host-a')).runnerId;
  });

  it('pool token --json prints the RegistrationToken with its secret', async () => {
    const minted = await json<RegistrationToken>(['pool', 'token', 'gpu', '--uses', '1']);
    expect(minted).toMatchObject({ pool: 'gpu', project: 'default', usesLeft: 1 });
    expect(minted.token).toMatch(/^rbtk_reg_/);
  });

  it('pool token for an unknown pool exits 4', async () => {
    const res = await run(['pool', 'token', 'nope']);
    expect(res.code).toBe(4);
    expect(res.stdout).toBe('');
  });

  it('lists, filters and shows runners', async () => {
    const list = await run(['runner', 'list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^ID\s+NAME\s+POOL\s+STATUS\s+LAST HEARTBEAT\s+LABELS$/m);
    expect(list.stdout).toMatch(new RegExp(`^${runnerId}\\s+host-a\\s+gpu\\s+OFFLINE\\s+never\\s+gpus=8$`, 'm'));
    const filtered = await json<Runner[]>(['runner', 'list', '--pool', 'gpu']);
    expect(filtered.map((r) => r.id)).toEqual([runnerId]);
    const show = await run(['runner', 'show', runnerId]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^name:\s+host-a$/m);
  });

  it('revokes a runner; it is gone afterwards (exit 4)', async () => {
    const res = await run(['runner', 'revoke', runnerId]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe(`revoked runner ${runnerId} (host-a, pool gpu)\n`);
    expect((await run(['runner', 'show', runnerId])).code).toBe(4);
    expect((await run(['runner', 'revoke', runnerId])).code).toBe(4);
  });
});

describe('audit', () => {
  it('has a row for each mutation above, filterable, with no secret in it', async () => {
    const all = await json<AuditEntry[]>(['audit']);
    const actions = all.map((e) => e.action);
    for (const action of ['pool.create', 'pool.delete', 'token.mint', 'runner.register', 'runner.revoke']) expect(actions).toContain(action);
    expect(JSON.stringify(all)).not.toMatch(/rbtk_(reg|run|api)_/);
    const pools = await json<AuditEntry[]>(['audit', '--resource-type', 'pool']);
    expect(pools.length).toBeGreaterThan(0);
    expect(pools.every((e) => e.resourceType === 'pool')).toBe(true);
    const table = await run(['audit', '--resource-type', 'pool', '--limit', '1']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^ID\s+TIME\s+ACTOR\s+ACTION\s+RESOURCE\s+DETAILS$/);
    expect(lines[1]).toMatch(/\s+admin:\S+\s+pool\.delete\s+pool\/scratch(\s|$)/);
  });
});

describe('projects and API tokens', () => {
  it('creates and lists projects; --project scopes pools', async () => {
    const created = await run(['project', 'create', 'robots']);
    expect(created.code, created.stderr).toBe(0);
    expect((await run(['project', 'list'])).stdout).toMatch(/^robots\s+\S+Z$/m);
    expect((await run(['pool', 'create', 'arm', '--project', 'robots'])).code).toBe(0);
    const robots = await json<Pool[]>(['pool', 'list'], { RBTK_PROJECT: 'robots' });
    expect(robots.map((p) => p.name)).toEqual(['arm']);
  });

  it('token create prints the token alone; a submitter token gets exit 5', async () => {
    const res = await run(['token', 'create', '--role', 'submitter', '--name', 'ci']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^rbtk_api_\S+\n$/);
    const denied = await run(['pool', 'list'], { RBTK_TOKEN: res.stdout.trim() });
    expect(denied.code).toBe(5);
    expect(denied.stderr).toMatch(/^rbtk: /);
  });

  it('a project admin token works in its project and gets exit 5 in another', async () => {
    const token = await json<ApiToken>(['token', 'create', '--role', 'admin', '--project', 'robots']);
    expect(token).toMatchObject({ role: 'admin', project: 'robots' });
    const env = { RBTK_TOKEN: token.token! };
    const own = await json<Pool[]>(['pool', 'list'], env);
    expect(own.map((p) => p.name)).toEqual(['arm']);
    const other = await run(['pool', 'list', '--project', 'default'], env);
    expect(other.code).toBe(5);
    expect(other.stderr).toContain('robots');
  });
});

describe('tokens and reachability', () => {
  it('a wrong token exits 5', async () => {
    const res = await run(['pool', 'list'], { RBTK_TOKEN: 'rbtk_api_aaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' });
    expect(res.code).toBe(5);
    expect(res.stderr).toMatch(/^rbtk: .*\(token from --token or RBTK_TOKEN\)\n$/);
  });

  it('without a token, uses ./.data/admin.token of the working directory', async () => {
    const res = await rbtk(['pool', 'show', 'gpu'], { env: { RBTK_URL: coordinator.url }, cwd: dir });
    expect(res.code, res.stderr).toBe(0);
  });

  it('a stopped coordinator exits 3', async () => {
    const other = await startCoordinator({ dataDir: join(dir, 'other'), port: 0, logLevel: 'silent' });
    await other.stop();
    const res = await rbtk(['pool', 'list'], { env: { RBTK_URL: other.url, RBTK_TOKEN: adminToken } });
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(new RegExp(`^rbtk: cannot reach the coordinator at ${other.url}: .*ECONNREFUSED`));
  });
});
