import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rbtk } from './cli-run.js';

/**
 * Argument parsing, help and token lookup of the real `rbtk` bin. A stub HTTP server
 * counts requests, so "nothing was sent" is checked, not assumed.
 */
let server: Server;
let url = '';
let dir = '';
const seen: IncomingMessage[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rbtk-cli-'));
  server = createServer((req, res) => {
    seen.push(req);
    res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.close();
  await once(server, 'close');
  if (dir) await rm(dir, { recursive: true, force: true });
});

const env = () => ({ RBTK_URL: url, RBTK_TOKEN: 'rbtk_api_abcdefgh12345678_secretsecretsecret' });

describe('rbtk --help', () => {
  it('lists commands, environment and the exit-code table', async () => {
    const res = await rbtk(['--help']);
    expect(res.code).toBe(0);
    for (const word of ['project', 'pool', 'runner', 'audit', 'token', 'RBTK_URL', 'RBTK_TOKEN_FILE', 'RBTK_PROJECT', 'Exit codes:']) {
      expect(res.stdout).toContain(word);
    }
    expect(res.stdout).toMatch(/^\s+3\s+cannot reach the coordinator$/m);
    expect(res.stdout).toMatch(/^\s+5\s+unauthorized or forbidden/m);
  });

  const commands = [
    ['project', 'create'], ['project', 'list'],
    ['pool', 'create'], ['pool', 'list'], ['pool', 'show'], ['pool', 'delete'], ['pool', 'token'],
    ['runner', 'list'], ['runner', 'show'], ['runner', 'revoke'],
    ['audit'], ['token', 'create'], ['token', 'list'], ['token', 'revoke'],
  ];
  it.each(commands)('%s %s --help shows the global options', async (...cmd) => {
    const res = await rbtk([...cmd.filter(Boolean), '--help']);
    expect(res.code).toBe(0);
    for (const flag of ['--url', '--token', '--project', '--json', '.data/admin.token']) expect(res.stdout).toContain(flag);
  });

  it('help asked for exits 0: `rbtk help pool`, `rbtk pool help create`, --version', async () => {
    expect((await rbtk(['help', 'pool'])).code).toBe(0);
    const create = await rbtk(['pool', 'help', 'create']);
    expect(create.code).toBe(0);
    expect(create.stdout).toContain('Usage: rbtk pool create');
    const version = await rbtk(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('a group without a subcommand prints its help and exits 2', async () => {
    const res = await rbtk(['pool']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('Usage: rbtk pool');
  });
});

describe('usage errors exit 2 before any request', () => {
  const cases: [string, string[], RegExp][] = [
    ['tag without =', ['pool', 'create', 'gpu', '--tag', 'env'], /key=value/],
    ['tag with empty key', ['pool', 'create', 'gpu', '--tag', '=prod'], /key=value/],
    ['tag given twice', ['pool', 'create', 'gpu', '--tag', 'a=1', '--tag', 'a=2'], /given twice/],
    ['hosted label without =', ['pool', 'update', 'warm', '--label', 'tier'], /write labels as key=value, e.g. --label/],
    ['hosted label given twice', ['pool', 'update', 'warm', '--label', 'a=1', '--label', 'a=2'], /label "a" given twice/],
    ['bad pool type', ['pool', 'create', 'gpu', '--type', 'cloud'], /self-hosted/],
    ['pool name with capitals', ['pool', 'create', 'GPU'], /lowercase/],
    ['bad ttl', ['pool', 'token', 'gpu', '--ttl', 'soon'], /invalid duration/],
    ['zero ttl', ['pool', 'token', 'gpu', '--ttl', '0s'], /longer than 0s/],
    ['ttl past ten years', ['pool', 'token', 'gpu', '--ttl', '3651d'], /at most 3650d/],
    ['zero uses', ['pool', 'token', 'gpu', '--uses', '0'], /positive integer/],
    ['negative uses', ['pool', 'token', 'gpu', '--uses', '-3'], /positive integer|argument missing|unknown option/],
    ['fractional uses', ['pool', 'token', 'gpu', '--uses', '1.5'], /positive integer/],
    ['bad limit', ['audit', '--limit', 'ten'], /positive integer/],
    ['bad resource type', ['audit', '--resource-type', 'job'], /project, pool, runner, token/],
    ['missing role', ['token', 'create'], /--role/],
    ['bad role', ['token', 'create', '--role', 'root'], /admin, submitter/],
    ['bad token ttl', ['token', 'create', '--role', 'submitter', '--ttl', 'soon'], /invalid duration/],
    ['token ttl past ten years', ['token', 'create', '--role', 'submitter', '--ttl', '3651d'], /at most 3650d/],
    ['token revoke without an id', ['token', 'revoke'], /missing required argument/],
    ['missing argument', ['pool', 'show'], /missing required argument/],
    ['extra argument', ['pool', 'list', 'extra'], /too many arguments/],
    ['unknown command', ['pools'], /unknown command/],
    ['unknown option', ['pool', 'list', '--all'], /unknown option/],
    ['bad url', ['pool', 'list', '--url', 'ftp://x'], /http/],
    ['bad project', ['pool', 'list', '--project', 'Bad Name'], /lowercase/],
    // Checked in the action, not by commander's parser: they must still say why.
    ['hosted flags on a self-hosted pool', ['pool', 'create', 'x', '--target', '2'], /hosted flags .* need --type hosted/],
    ['hosted pool without --provider', ['pool', 'create', 'x', '--type', 'hosted', '--target', '2'], /needs --provider process\|docker/],
    ['hosted pool without --target', ['pool', 'create', 'x', '--type', 'hosted', '--provider', 'process'], /needs --target N/],
    ['pool update with nothing to change', ['pool', 'update', 'x'], /nothing to change/],
    // Caught by the API schema on this side: nothing was sent, so 2, not 1.
    ['docker provider without --image', ['pool', 'create', 'w', '--type', 'hosted', '--provider', 'docker', '--target', '2'], /hosted\.image: the docker provider needs an image/],
    ['min above target', ['pool', 'create', 'w', '--type', 'hosted', '--provider', 'process', '--target', '2', '--min', '3'], /min \(3\) is above target \(2\)/],
  ];
  it.each(cases)('%s', async (_what, args, message) => {
    const before = seen.length;
    const res = await rbtk(args, { env: env() });
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toMatch(/^rbtk: /);
    expect(res.stderr).toMatch(message);
    expect(res.stdout).toBe('');
    expect(seen.length).toBe(before);
  });

  it('a usage error in an action wins over a missing token (2, not 5)', async () => {
    const before = seen.length;
    for (const args of [['pool', 'create', 'w', '--type', 'hosted', '--provider', 'docker', '--target', '2'], ['pool', 'update', 'x']]) {
      const res = await rbtk(args, { env: { RBTK_URL: url } });
      expect(res.code, res.stderr).toBe(2);
      expect(res.stderr).not.toMatch(/no API token/);
    }
    expect(seen.length).toBe(before);
  });

  it('help says what --min, --max and --json with --follow do', async () => {
    const create = await rbtk(['pool', 'create', '--help']);
    const flat = create.stdout.replace(/\s+/g, ' ');
    expect(flat).toContain('a matching schedule entry ignores it');
    expect(flat).toContain('create: default twice the target; update: kept as it is');
    const submit = await rbtk(['job', 'submit', '--help']);
    expect(submit.stdout.replace(/\s+/g, ' ')).toContain('with --follow, NDJSON (one watch event per line)');
  });

  it('a bad RBTK_URL is a usage error too', async () => {
    const res = await rbtk(['pool', 'list'], { env: { ...env(), RBTK_URL: 'not a url' } });
    expect(res.code).toBe(2);
  });
});

describe('token lookup', () => {
  it('without any token, exits 5 before any request', async () => {
    const before = seen.length;
    const res = await rbtk(['pool', 'list'], { env: { RBTK_URL: url } });
    expect(res.code).toBe(5);
    expect(res.stderr).toMatch(/^rbtk: no API token/);
    expect(seen.length).toBe(before);
  });

  it('--token wins over RBTK_TOKEN and goes out as a bearer token', async () => {
    const res = await rbtk(['pool', 'list', '--token', 'from-flag'], { env: env() });
    expect(res.code, res.stderr).toBe(0);
    expect(seen.at(-1)?.headers.authorization).toBe('Bearer from-flag');
  });

  it('reads RBTK_TOKEN_FILE, and exits 2 when it cannot be read', async () => {
    await writeFile(join(dir, 'tok'), 'from-file\n');
    const ok = await rbtk(['pool', 'list'], { env: { RBTK_URL: url, RBTK_TOKEN_FILE: join(dir, 'tok') } });
    expect(ok.code, ok.stderr).toBe(0);
    expect(seen.at(-1)?.headers.authorization).toBe('Bearer from-file');
    const missing = await rbtk(['pool', 'list'], { env: { RBTK_URL: url, RBTK_TOKEN_FILE: join(dir, 'nope') } });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read RBTK_TOKEN_FILE .*nope: ENOENT/);
  });

  it('falls back to ./.data/admin.token in the working directory', async () => {
    const cwd = join(dir, 'work');
    await mkdir(join(cwd, '.data'), { recursive: true });
    await writeFile(join(cwd, '.data', 'admin.token'), 'from-data-dir\n');
    const res = await rbtk(['pool', 'list'], { env: { RBTK_URL: url }, cwd });
    expect(res.code, res.stderr).toBe(0);
    expect(seen.at(-1)?.headers.authorization).toBe('Bearer from-data-dir');
  });

  it('sends --project as ?project= and no project when none is chosen', async () => {
    await rbtk(['pool', 'list', '--project', 'robots'], { env: env() });
    expect(seen.at(-1)?.url).toBe('/v1/pools?project=robots');
    await rbtk(['pool', 'list'], { env: env() });
    expect(seen.at(-1)?.url).toBe('/v1/pools');
  });
});

describe('unreachable coordinator', () => {
  it('exits 3 and names the URL', async () => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as AddressInfo).port;
    probe.close();
    await once(probe, 'close');
    const res = await rbtk(['pool', 'list'], { env: { ...env(), RBTK_URL: `http://127.0.0.1:${port}` } });
    expect(res.code).toBe(3);
    expect(res.stderr).toContain(`rbtk: cannot reach the coordinator at http://127.0.0.1:${port}: `);
    expect(res.stderr).toContain('ECONNREFUSED');
    expect(res.stdout).toBe('');
  });
});
