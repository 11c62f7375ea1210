import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseToken, RunnerConfig, type Runner } from '@rbtk/protocol';
import { Fleet } from './helpers/fleet.js';
import { BIN, runCli, waitFor } from './helpers/processes.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

// rbtk-runner register through a proxy that loses the coordinator's answers:
// the registration commits, the host never hears it, and the retry must not
// cost the token's only use.
describe('rbtk-runner register retries a lost answer with the same registration id', () => {
  let fleet: Fleet;
  let proxy: TcpProxy;

  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ heartbeatInterval: '200ms' });
    const created = await fleet.rbtk(['pool', 'create', 'lossy']);
    expect(created.code, created.stderr).toBe(0);
    proxy = await TcpProxy.start(fleet.url);
  });

  afterAll(async () => {
    await proxy.close();
    expect(await fleet.close()).toEqual([]);
  });

  const registerViaProxy = (name: string, token: string) =>
    runCli(BIN.runner, ['register', '--url', proxy.url, '--token', token, '--name', name, '--config', fleet.configPath(name)]);

  it('registers once, writes runner.yaml, and the runner connects on the token it got', async () => {
    const token = await fleet.mintToken('lossy', '--uses', '1');
    proxy.dropResponses(1);
    const before = proxy.requests;
    const res = await registerViaProxy('lossy-a', token);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/register: try 1 of 5 failed \(.+\); retrying in \d+\.\d s with the same registration id/);
    expect(proxy.requests - before).toBe(2);
    // Neither the registration token nor the runner token reached the output.
    expect(res.stdout + res.stderr).not.toContain(parseToken(token)!.secret);

    const runnerId = res.stdout.trim();
    const runners = await fleet.rbtkJson<Runner[]>(['runner', 'list', '--pool', 'lossy']);
    expect(runners.map((r) => [r.id, r.name])).toEqual([[runnerId, 'lossy-a']]);
    const config = RunnerConfig.parse(parseYaml(await readFile(fleet.configPath('lossy-a'), 'utf8')));
    expect(config).toMatchObject({ runner_id: runnerId, pool: 'lossy' });

    // The audit shows the one use and its retry; the token has no use left for anyone else.
    const audit = await fleet.rbtkJson<{ action: string; resourceId: string; details: { retry?: boolean } }[]>(['audit', '--resource-type', 'runner']);
    expect(audit.filter((a) => a.resourceId === runnerId).map((a) => a.details.retry ?? false).sort()).toEqual([false, true]);
    const other = await fleet.register('lossy-b', token);
    expect(other.stderr).toMatch(/no uses left/);

    fleet.startRunner('lossy-a');
    await waitFor('runner ONLINE', async () => (await fleet.runnerStatus(runnerId)) === 'ONLINE');
  });

  it('does not retry a refusal (4xx): one request, exit 1', async () => {
    const token = await fleet.mintToken('lossy', '--uses', '1');
    expect((await fleet.register('lossy-c', token)).code).toBe(0);
    const before = proxy.requests;
    const res = await registerViaProxy('lossy-d', token);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/registration refused \(token_used_up\)/);
    expect(res.stderr).not.toMatch(/retrying/);
    expect(proxy.requests - before).toBe(1);
  });
});
