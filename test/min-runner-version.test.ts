import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runner } from '@rbtk/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from './helpers/fleet.js';
import { Jobs, shell } from './helpers/jobs.js';
import { REPO_ROOT, waitFor } from './helpers/processes.js';

const AGENT_PACKAGE_JSON = join(REPO_ROOT, 'packages/agent/package.json');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/*
 * A coordinator started with --min-runner-version above the runner's version,
 * on a host where no newer agent is installed: exiting 75 would make systemd
 * start the same old agent again every few seconds, forever. The runner stays
 * connected and drained instead, and exits 75 once a newer agent is on disk.
 */
describe('--min-runner-version above the installed agent', () => {
  let fleet: Fleet;
  let jobs: Jobs;

  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '5s', heartbeatInterval: '200ms', minRunnerVersion: '99.0.0' });
    jobs = new Jobs(fleet);
    expect((await fleet.rbtk(['pool', 'create', 'build'])).code).toBe(0);
  });

  afterAll(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  it('stays up, connected and drained (no restart loop), says why in status, and exits 75 once a newer agent is installed', async () => {
    const id = await fleet.registerRunner('build', 'old', '--executor', 'shell');
    // The installed package.json, as the package manager leaves it: the running version, for now.
    const installed = join(fleet.dir, 'installed-package.json');
    const pkg = JSON.parse(await readFile(AGENT_PACKAGE_JSON, 'utf8')) as { version: string };
    await writeFile(installed, JSON.stringify(pkg));
    const runner = fleet.startRunner('old', { RBTK_RUNNER_PACKAGE_JSON: installed });

    const reason = `the coordinator requires rbtk-runner 99.0.0 or later; this is ${pkg.version} and the installed one is ${pkg.version}: install rbtk-runner 99.0.0 or later`;
    await waitFor('runner DRAINING for the minimum', async () => {
      const shown = await fleet.rbtkJson<Runner>(['runner', 'show', id]);
      return shown.status === 'DRAINING' && shown.drainReason === reason;
    });
    const job = await jobs.submit(shell('echo ran'));
    // Longer than a restart loop's period would be here (systemd's RestartSec aside, the agent restarts in a few seconds).
    await sleep(4_000);
    expect(runner.running).toBe(true);
    expect(runner.lines.filter((l) => l.msg === 'connected')).toHaveLength(1);
    expect(runner.lines.filter((l) => l.level === 50)).toEqual([
      expect.objectContaining({ minimum: '99.0.0', running: pkg.version, installed: pkg.version }),
    ]);
    expect((await jobs.get(job.id)).state).toBe('queued');

    const status = await fleet.runner(['status', '--config', fleet.configPath('old'), '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).daemon).toMatchObject({
      connected: true,
      exiting: null,
      upgradeRequired: { minimum: '99.0.0', running: pkg.version, installed: pkg.version },
      draining: [expect.objectContaining({ source: 'upgrade', reason })],
    });
    const text = await fleet.runner(['status', '--config', fleet.configPath('old')]);
    expect(text.stdout).toMatch(new RegExp(`^upgrade: +required: the coordinator takes rbtk-runner 99\\.0\\.0 or later; running ${pkg.version}, installed ${pkg.version};`, 'm'));

    // The package manager installs the newer agent; SIGHUP looks now (the watch would within a minute).
    await writeFile(installed, JSON.stringify({ ...pkg, version: '99.0.0' }));
    runner.kill('SIGHUP');
    expect((await runner.exited).code).toBe(75);
    expect(runner.lines).toContainEqual(expect.objectContaining({ msg: 'drained for an upgrade: exiting to be restarted', exitCode: 75 }));
    expect((await jobs.get(job.id)).state).toBe('queued');
  });
});
