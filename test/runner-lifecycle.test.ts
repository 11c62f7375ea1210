import { readFile, stat } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { EXIT_REVOKED, parseToken, RunnerConfig, type Runner } from '@rbtk/protocol';
import { Fleet } from './helpers/fleet.js';
import { waitFor } from './helpers/processes.js';

// Short thresholds keep the suite fast; the production defaults are 60 s / 15 s.
const FLAGS = { offlineAfter: '1500ms', heartbeatInterval: '200ms', tokenRotation: '0s' };

async function readConfig(path: string): Promise<RunnerConfig> {
  return RunnerConfig.parse(parseYaml(await readFile(path, 'utf8')));
}

describe('runner lifecycle, real processes', () => {
  let fleet: Fleet;

  beforeEach(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator(FLAGS);
    const created = await fleet.rbtk(['pool', 'create', 'ci', '--tag', 'env=test']);
    expect(created.code, created.stderr).toBe(0);
  });

  afterEach(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  it('registers, runs, turns ONLINE and rotates its token in runner.yaml', async () => {
    const id = await fleet.registerRunner('ci', 'host-a', '--label', 'arch=x64');
    const path = fleet.configPath('host-a');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const first = await readConfig(path);
    expect(first).toMatchObject({ runner_id: id, name: 'host-a', labels: { arch: 'x64' } });

    fleet.startRunner('host-a');
    const listed = await waitFor('runner ONLINE in rbtk runner list', async () => {
      const runners = await fleet.rbtkJson<Runner[]>(['runner', 'list', '--pool', 'ci']);
      return runners.find((r) => r.id === id && r.status === 'ONLINE');
    });
    expect(listed).toMatchObject({ name: 'host-a', pool: 'ci', labels: { arch: 'x64' } });
    expect(listed.lastHeartbeatAt).not.toBeNull();

    // Rotation on every heartbeat: the file's token changes, and each version is a valid config.
    const seen = new Set([first.token]);
    await waitFor('three rotated tokens in runner.yaml', async () => {
      seen.add((await readConfig(path)).token);
      return seen.size >= 4;
    });
    expect((await stat(path)).mode & 0o777).toBe(0o600);

    const table = await fleet.rbtk(['runner', 'list']);
    expect(table.stdout).toMatch(/host-a\s+ci\s+ONLINE/);

    // Secrets never reach a log: neither the first runner token nor any rotated one.
    const logs = [...fleet.coordinator.output, ...fleet.procs.find('runner host-a').output].join('\n');
    for (const token of seen) expect(logs).not.toContain(parseToken(token)!.secret);

    const status = await fleet.runner(['status', '--config', path, '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ connected: true });
    expect(status.stdout).not.toContain((await readConfig(path)).token);
  });

  it('goes OFFLINE while stopped with SIGSTOP and ONLINE again after SIGCONT', async () => {
    const id = await fleet.registerRunner('ci', 'host-b');
    const agent = fleet.startRunner('host-b');
    await waitFor('ONLINE', async () => (await fleet.runnerStatus(id)) === 'ONLINE');

    agent.kill('SIGSTOP');
    const stoppedAt = Date.now();
    await waitFor('OFFLINE after the threshold', async () => (await fleet.runnerStatus(id)) === 'OFFLINE', 10_000);
    // Not before the threshold (1.5 s) has passed since the last heartbeat.
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(1_000);

    agent.kill('SIGCONT');
    await waitFor('ONLINE after SIGCONT', async () => (await fleet.runnerStatus(id)) === 'ONLINE', 15_000);
    expect(agent.running).toBe(true);
  });

  it('exits 77 within seconds of a revoke, and the host can register again', async () => {
    const id = await fleet.registerRunner('ci', 'host-c');
    const agent = fleet.startRunner('host-c');
    await waitFor('ONLINE', async () => (await fleet.runnerStatus(id)) === 'ONLINE');

    const revokedAt = Date.now();
    const revoke = await fleet.rbtk(['runner', 'revoke', id]);
    expect(revoke.code, revoke.stderr).toBe(0);
    const { code } = await agent.exited;
    expect(code).toBe(EXIT_REVOKED);
    expect(Date.now() - revokedAt).toBeLessThan(5_000);
    expect(agent.output.join('\n')).toContain('this runner was revoked or its token is invalid; register it again');

    expect((await fleet.rbtk(['runner', 'show', id])).code).toBe(4);
    const audit = await fleet.rbtkJson<{ action: string; resourceId: string }[]>(['audit', '--resource-type', 'runner']);
    expect(audit).toContainEqual(expect.objectContaining({ action: 'runner.revoke', resourceId: id }));

    // The old registration stays on disk until --force replaces it.
    const again = await fleet.register('host-c', await fleet.mintToken('ci'));
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/--force/);
    const forced = await fleet.register('host-c', await fleet.mintToken('ci'), '--force');
    expect(forced.code, forced.stderr).toBe(0);
    const newId = forced.stdout.trim();
    expect(newId).not.toBe(id);
    fleet.startRunner('host-c');
    await waitFor('re-registered runner ONLINE', async () => (await fleet.runnerStatus(newId)) === 'ONLINE');
  });

  it('keeps pools and runners across a coordinator SIGKILL, and runners reconnect', async () => {
    const ids = [await fleet.registerRunner('ci', 'host-d'), await fleet.registerRunner('ci', 'host-e')];
    const agents = [fleet.startRunner('host-d'), fleet.startRunner('host-e')];
    for (const id of ids) await waitFor('ONLINE', async () => (await fleet.runnerStatus(id)) === 'ONLINE');

    await fleet.restartCoordinator('SIGKILL');

    const pools = await fleet.rbtkJson<{ name: string; tags: Record<string, string> }[]>(['pool', 'list']);
    expect(pools).toContainEqual(expect.objectContaining({ name: 'ci', tags: { env: 'test' } }));
    for (const id of ids) {
      await waitFor('reconnected', async () => {
        const runner = await fleet.rbtkJson<Runner>(['runner', 'show', id]);
        return runner.connected && runner.status === 'ONLINE';
      });
    }
    expect(agents.every((a) => a.running)).toBe(true);
  });
});
