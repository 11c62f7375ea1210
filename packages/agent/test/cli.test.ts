import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXIT_REVOKED, type RegisterResponse } from '@rbtk/protocol';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { writeConfig } from '../src/config/write.js';
import { Daemon, assertBuilt, runCli } from './helpers/cli.js';
import { CoordinatorPeer } from './helpers/coordinator-peer.js';
import { runnerConfig, runnerToken, tempDir } from './helpers/fixtures.js';

const REG_TOKEN = 'rbtk_reg_regtoken00000001_c2VjcmV0c2VjcmV0c2VjcmV0';

describe('rbtk-runner CLI', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let peer: CoordinatorPeer;
  let daemons: Daemon[];
  const registrations: { auth: string | undefined; body: unknown }[] = [];
  /** Registrations the peer answers 503 before it answers one. */
  let unavailable = 0;
  let issued: { id: string; token: string };

  beforeAll(() => assertBuilt());

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    daemons = [];
    registrations.length = 0;
    unavailable = 0;
    peer = await CoordinatorPeer.start({
      heartbeatIntervalMs: 50,
      register: (auth, body) => {
        registrations.push({ auth, body });
        if (unavailable > 0) {
          unavailable--;
          return { status: 503, body: { error: { code: 'unavailable', message: 'coordinator is starting' } } };
        }
        if (auth !== `Bearer ${REG_TOKEN}`) {
          return { status: 401, body: { error: { code: 'token_expired', message: 'registration token expired at 2025-01-01T00:00:00Z' } } };
        }
        issued = runnerToken();
        const name = (body as { name: string }).name;
        const res: RegisterResponse = { runnerId: `runner${registrations.length}abcdefgh`, name, pool: 'ci', project: 'default', token: issued.token, heartbeatIntervalMs: 50 };
        return { status: 201, body: res };
      },
    });
  });

  afterEach(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await peer.close();
    await cleanup();
  });

  const start = (args: string[], env: NodeJS.ProcessEnv = {}, as: { uid?: number; gid?: number } = {}) => {
    const d = new Daemon(args, env, as);
    daemons.push(d);
    return d;
  };

  it('register writes runner.yaml 0600 in a new 0700 directory and prints the runner id alone', async () => {
    const path = join(dir, 'etc', 'runner.yaml');
    const res = await runCli([
      'register', '--url', peer.url, '--token', REG_TOKEN, '--name', 'gpu-01', '--label', 'arch=x64', '--label', 'gpu=a100',
      '--airgapped', '--max-jobs', '3', '--executor', 'shell', '--executor', 'docker', '--config', path,
    ]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe('runner1abcdefgh\n');
    expect(res.stderr).toContain('registered runner gpu-01 (runner1abcdefgh) in pool ci');
    expect(res.stderr).not.toContain(issued.token);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'etc'))).mode & 0o777).toBe(0o700);
    expect(await loadConfig(path)).toMatchObject({
      url: peer.url,
      runner_id: 'runner1abcdefgh',
      token: issued.token,
      name: 'gpu-01',
      pool: 'ci',
      project: 'default',
      labels: { arch: 'x64', gpu: 'a100' },
      airgapped: true,
      max_jobs: 3,
      executors: ['shell', 'docker'],
    });
    expect(registrations[0]).toMatchObject({
      auth: `Bearer ${REG_TOKEN}`,
      body: { name: 'gpu-01', labels: { arch: 'x64', gpu: 'a100' }, airgapped: true, agentVersion: '0.1.0', host: { cpus: expect.any(Number) } },
    });
  });

  it('refuses to overwrite a registration without --force (exit 2, no token used), replaces it with --force', async () => {
    const path = join(dir, 'runner.yaml');
    const env = { RBTK_URL: peer.url, RBTK_REGISTRATION_TOKEN: REG_TOKEN, RBTK_RUNNER_CONFIG: path };
    expect((await runCli(['register', '--name', 'a'], env)).code).toBe(0);
    const again = await runCli(['register', '--name', 'a'], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`error: ${path} already holds a registration (runner runner1abcdefgh); pass --force to replace it\n`);
    expect(registrations).toHaveLength(1);

    const forced = await runCli(['register', '--name', 'a', '--force', '--json'], env);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout)).toEqual({ runnerId: 'runner2abcdefgh', name: 'a', pool: 'ci', project: 'default', heartbeatIntervalMs: 50 });
    expect(forced.stdout).not.toContain('rbtk_run_');
    expect((await loadConfig(path)).runner_id).toBe('runner2abcdefgh');
  });

  it('register --force refuses while the daemon runs on that runner.yaml (exit 2, no token used), then replaces it', async () => {
    const path = join(dir, 'runner.yaml');
    await writeConfig(path, runnerConfig(peer.url));
    const daemon = start(['run', '--config', path]);
    await daemon.waitForLog('connected');
    const args = ['register', '--url', peer.url, '--token', REG_TOKEN, '--config', path, '--force'];
    const refused = await runCli(args);
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toMatch(/^error: rbtk-runner run \(pid \d+\) is running on .*runner\.yaml; stop it first/);
    expect(registrations).toHaveLength(0);
    expect((await loadConfig(path)).runner_id).toBe('runner0000000001');

    daemon.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    const replaced = await runCli(args);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect((await loadConfig(path)).runner_id).toBe('runner1abcdefgh');
  });

  it('register --force refuses while a stopped (SIGSTOP) daemon holds that runner.yaml, though it answers no status request', async () => {
    const path = join(dir, 'runner.yaml');
    await writeConfig(path, runnerConfig(peer.url));
    const daemon = start(['run', '--config', path]);
    await daemon.waitForLog('connected');
    daemon.kill('SIGSTOP');
    try {
      const args = ['register', '--url', peer.url, '--token', REG_TOKEN, '--config', path, '--force'];
      const refused = await runCli(args);
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toMatch(/^error: rbtk-runner run is running on .*runner\.yaml; stop it first/);
      expect(registrations).toHaveLength(0);
      expect((await loadConfig(path)).runner_id).toBe('runner0000000001');
    } finally {
      daemon.kill('SIGCONT');
    }
  });

  it.each([
    [['--max-jobs', '0'], /--max-jobs/],
    [['--executor', 'podman'], /docker or shell/],
    [['--label', 'novalue'], /key=value/],
    [['--name', 'bad name!'], /--name: /],
  ])('exits 2 on bad flags %j without calling the coordinator', async (extra, pattern) => {
    const res = await runCli(['register', '--url', peer.url, '--token', REG_TOKEN, '--config', join(dir, 'r.yaml'), ...extra]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(pattern);
    expect(registrations).toHaveLength(0);
  });

  it('exits 2 without a registration token, and 1 with the coordinator message when it refuses', async () => {
    const path = join(dir, 'runner.yaml');
    const missing = await runCli(['register', '--url', peer.url, '--config', path]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--token/);
    const wrongKind = await runCli(['register', '--url', peer.url, '--token', runnerToken().token, '--config', path]);
    expect(wrongKind.code).toBe(2);
    expect(wrongKind.stderr).toMatch(/must be a registration token/);

    const refused = await runCli(['register', '--url', peer.url, '--token', 'rbtk_reg_otherregtoken0001_c2VjcmV0c2VjcmV0c2VjcmV0', '--config', path]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('error: registration refused (token_expired): registration token expired at 2025-01-01T00:00:00Z\n');
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
  });

  it('register retries a 503 with the same registration id; another invocation sends another id', async () => {
    unavailable = 2;
    const res = await runCli(['register', '--url', peer.url, '--token', REG_TOKEN, '--config', join(dir, 'a.yaml')]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr.match(/retrying in \d+\.\d s with the same registration id/g)).toHaveLength(2);
    expect(res.stderr).toMatch(/try 1 of 5 failed \(coordinator is starting\)/);
    expect(res.stderr).not.toContain(REG_TOKEN);
    const ids = registrations.map((r) => (r.body as { registrationId?: string }).registrationId);
    expect(ids).toHaveLength(3);
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(ids).size).toBe(1);

    expect((await runCli(['register', '--url', peer.url, '--token', REG_TOKEN, '--config', join(dir, 'b.yaml')])).code).toBe(0);
    expect((registrations[3]!.body as { registrationId: string }).registrationId).not.toBe(ids[0]);
  });

  it('run exits 78 with the reason on an invalid config', async () => {
    const path = join(dir, 'runner.yaml');
    await writeFile(path, 'url: http://x\nrunner_id: r\ntoken: t\nname: h\nmax_jobs: many\n');
    const res = await runCli(['run', '--config', path]);
    expect(res.code).toBe(78);
    const line = JSON.parse(res.stdout.trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 60, key: 'max_jobs', code: 'invalid_config' });
    expect(line.msg).toMatch(new RegExp(`^invalid config: ${path}: max_jobs: `));
    const status = await runCli(['status', '--config', path]);
    expect(status.code).toBe(78);
  });

  it('run connects and logs "connected"; status reports it (exit 0) without the token; SIGTERM exits 0 with close 1000', async () => {
    const path = join(dir, 'runner.yaml');
    await writeConfig(path, runnerConfig(peer.url));
    const notYet = await runCli(['status', '--config', path, '--json']);
    expect(notYet.code).toBe(3);
    expect(JSON.parse(notYet.stdout)).toMatchObject({ running: false, connected: false, reason: 'not running' });

    const daemon = start(['run', '--config', path]);
    const connected = await daemon.waitForLog('connected');
    expect(connected).toMatchObject({ level: 30, name: 'host-a', runnerId: 'runner0000000001', pool: 'ci', status: 'ONLINE', url: peer.url });
    await peer.waitFor('heartbeats', () => peer.messages('heartbeat').length >= 2);

    const status = await runCli(['status', '--config', path, '--json']);
    expect(status.code, status.stderr).toBe(0);
    const report = JSON.parse(status.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({
      running: true,
      connected: true,
      runnerId: 'runner0000000001',
      pool: 'ci',
      labels: { arch: 'x64' },
      stateDir: join(dir, 'state'),
      daemon: { connected: true, status: 'ONLINE', pool: 'ci' },
    });
    expect(status.stdout).not.toContain('rbtk_run_');
    const human = await runCli(['status', '--config', path]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^runner: +host-a \(runner0000000001\)\n/);
    expect(human.stdout).toMatch(/daemon: +running \(pid \d+\), connected since /);

    daemon.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    await peer.waitFor('close', () => peer.closes[0]);
    expect(peer.closes[0]).toMatchObject({ code: 1000 });
    expect(daemon.output.join('\n')).not.toContain((await loadConfig(path)).token);
    const after = await runCli(['status', '--config', path]);
    expect(after.code).toBe(3);
    expect(after.stdout).toMatch(/daemon: +not running/);
  });

  it('run exits 77 with the revoked message when the coordinator closes with 4401', async () => {
    const path = join(dir, 'runner.yaml');
    await writeConfig(path, runnerConfig(peer.url));
    const daemon = start(['run', '--config', path]);
    await daemon.waitForLog('connected');
    peer.closeAll(4401, 'runner revoked by admin');
    expect(await daemon.exited).toBe(EXIT_REVOKED);
    expect(daemon.lines.at(-1)).toMatchObject({
      level: 50,
      msg: 'this runner was revoked or its token is invalid; register it again',
      reason: 'runner revoked by admin',
    });
  });

  it('run rotates the token into runner.yaml', async () => {
    const path = join(dir, 'runner.yaml');
    const rotated = runnerToken();
    await peer.close();
    peer = await CoordinatorPeer.start({ heartbeatIntervalMs: 50, ack: (seq) => (seq === 0 ? { rotatedToken: rotated } : {}) });
    await writeConfig(path, runnerConfig(peer.url));
    const daemon = start(['run', '--config', path]);
    await peer.waitFor('confirm', () => peer.messages('token_confirm')[0]);
    expect((await loadConfig(path)).token).toBe(rotated.token);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readFile(path, 'utf8')).toMatch(/^# rbtk-runner configuration/);
    daemon.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
  });

  it('run uses a rotated token whose rename it could not fsync, and does not confirm it', async () => {
    // A directory without read permission: files can be created and renamed in it, but it
    // cannot be opened to fsync. Root ignores modes, so a root test runs the daemon as nobody.
    const confDir = join(dir, 'conf');
    const path = join(confDir, 'runner.yaml');
    const rotated = runnerToken();
    await peer.close();
    peer = await CoordinatorPeer.start({ heartbeatIntervalMs: 50, ack: (seq, conn) => (conn === 0 && seq === 0 ? { rotatedToken: rotated } : {}) });
    await mkdir(confDir);
    const config = runnerConfig(peer.url, { executors: ['shell'] });
    await writeConfig(path, config);
    const as = process.getuid?.() === 0 ? { uid: Number(execFileSync('id', ['-u', 'nobody'])), gid: Number(execFileSync('id', ['-g', 'nobody'])) } : {};
    if (as.uid !== undefined) {
      await chmod(dir, 0o711);
      await chown(confDir, as.uid, as.gid!);
      await chown(path, as.uid, as.gid!);
    }
    await chmod(confDir, 0o300);

    const daemon = start(['run', '--config', path], {}, as);
    const failed = await daemon.waitForLog('saved the rotated token without a durable rename; using it, not confirming it');
    expect(failed).toMatchObject({ level: 50, tokenId: rotated.id });
    expect(String(failed.err)).toMatch(/could not fsync its directory .*EACCES/);
    expect((await loadConfig(path)).token).toBe(rotated.token);
    await peer.waitFor('more heartbeats', () => peer.messages('heartbeat').length >= 4);
    expect(peer.messages('token_confirm')).toEqual([]);

    // The next connection presents the token the file holds.
    peer.closeAll(1001);
    await peer.waitFor('second upgrade', () => peer.upgrades[1]);
    expect(peer.upgrades[1]!.authorization).toBe(`Bearer ${rotated.token}`);
    daemon.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    await chmod(confDir, 0o700);
  });
});
