import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEntry, Runner } from '@rbtk/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { Fleet } from './helpers/fleet.js';
import { Jobs, shell } from './helpers/jobs.js';
import { REPO_ROOT, waitFor, type Proc } from './helpers/processes.js';

/*
 * Drain end to end: real coordinators, real rbtk-runner daemons running shell
 * jobs, the operator CLI and the host CLI. A job in flight always finishes;
 * nothing new lands on a draining runner; jobs land again after resume.
 */

const AGENT_PACKAGE_JSON = join(REPO_ROOT, 'packages/agent/package.json');

/** Sets keys of a runner's runner.yaml (the daemon must not be running). */
async function setConfig(fleet: Fleet, name: string, keys: Record<string, unknown>): Promise<void> {
  const path = fleet.configPath(name);
  await writeFile(path, stringify({ ...parse(await readFile(path, 'utf8')), ...keys }), { mode: 0o600 });
}

/** The exit code of a process once it has exited. */
const exitOf = async (proc: Proc) => (await proc.exited).code;

describe('drain on the host and from the coordinator', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  let id: string;
  let runner: Proc;
  const config = () => fleet.configPath('r1');
  const runnerJson = () => fleet.rbtkJson<Runner>(['runner', 'show', id]);
  const audit = () => fleet.rbtkJson<AuditEntry[]>(['audit', '--resource-type', 'runner']);

  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '5s', heartbeatInterval: '200ms' });
    jobs = new Jobs(fleet);
    expect((await fleet.rbtk(['pool', 'create', 'build'])).code).toBe(0);
    id = await fleet.registerRunner('build', 'r1', '--executor', 'shell');
    await setConfig(fleet, 'r1', { shutdown_timeout: '30s' });
    runner = fleet.startRunner('r1');
    await waitFor('runner ONLINE', async () => (await fleet.runnerStatus(id)) === 'ONLINE');
  });

  afterAll(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  it('rbtk-runner drain: DRAINING at once, the job in flight finishes, nothing new lands; --wait returns when idle; resume', async () => {
    const first = await jobs.submit(shell('sleep 8; echo first done'));
    await jobs.waitForState(first.id, ['running']);

    const drained = await fleet.runner(['drain', '--config', config(), '--json']);
    expect(drained.code, drained.stderr).toBe(0);
    expect(JSON.parse(drained.stdout)).toMatchObject({
      idle: false,
      running: [{ jobId: first.id, attempt: 1, state: 'running' }],
      daemon: { connected: true, draining: [{ source: 'host', reason: 'drained on the host (rbtk-runner drain)' }] },
    });
    // The coordinator hears at once: DRAINING while the job still runs.
    await waitFor('runner DRAINING', async () => (await runnerJson()).status === 'DRAINING', 1_500, 20);
    expect((await jobs.get(first.id)).state).toBe('running');
    expect((await runnerJson()).drainReason).toBe('drained on the host (rbtk-runner drain)');

    const second = await jobs.submit(shell('echo second done'));
    const waited = await fleet.runner(['drain', '--config', config(), '--wait', '--timeout', '30s']);
    expect(waited.code, waited.stderr).toBe(0);
    // Whether the job still ran when --wait asked depends on this machine's speed; that it returned once idle does not.
    expect(waited.stdout).toMatch(/^draining: no new jobs; .*; the coordinator has been told\nidle: no job running\n$/);
    // The runner was idle: the job's result is at the coordinator, or on its way.
    expect(await jobs.waitForState(first.id, ['succeeded'], 3_000)).toMatchObject({ attempt: 1, exitCode: 0 });
    expect(await jobs.log(first.id)).toBe('first done\n');

    // Idle and draining: the queued job stays queued.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await jobs.get(second.id)).toMatchObject({ state: 'queued', attempt: 0 });
    const status = JSON.parse((await fleet.runner(['status', '--config', config(), '--json'])).stdout) as { daemon: { jobs: unknown[] } };
    expect(status.daemon.jobs).toEqual([]);

    const resumed = await fleet.runner(['resume', '--config', config()]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toBe('resumed: taking jobs\n');
    expect(await jobs.waitForState(second.id, ['succeeded'], 10_000)).toMatchObject({ runnerId: id, attempt: 1 });
    expect((await runnerJson()).status).toBe('ONLINE');

    const rows = (await audit()).filter((a) => a.resourceId === id && a.action.startsWith('runner.'));
    expect(rows.map((a) => [a.action, a.actor])).toEqual(
      expect.arrayContaining([
        ['runner.drain', `runner:${id}`],
        ['runner.resume', `runner:${id}`],
      ]),
    );
    expect(rows.find((a) => a.action === 'runner.drain')?.details).toMatchObject({ by: 'runner', reason: 'drained on the host (rbtk-runner drain)' });
  });

  it('drain --wait fails at the timeout, naming the jobs still running (exit 124)', async () => {
    const slow = await jobs.submit(shell('sleep 4'));
    await jobs.waitForState(slow.id, ['running']);
    const res = await fleet.runner(['drain', '--config', config(), '--wait', '--timeout', '500ms']);
    expect(res.code).toBe(124);
    expect(res.stderr).toBe(`error: still running after 500ms: ${slow.id}#1 (running)\n`);
    expect((await fleet.runner(['resume', '--config', config()])).code).toBe(0);
    await jobs.waitForState(slow.id, ['succeeded'], 10_000);
  });

  it('rbtk runner drain: the runner hears it, it outlives a restart of the runner, rbtk runner resume lifts it', async () => {
    const drained = await fleet.rbtk(['runner', 'drain', id]);
    expect(drained.code, drained.stderr).toBe(0);
    expect(drained.stdout).toBe(`runner ${id} (r1) DRAINING: no new jobs; its running jobs finish\n`);
    await waitFor('the runner hears', async () => {
      const s = JSON.parse((await fleet.runner(['status', '--config', config(), '--json'])).stdout) as { daemon: { draining: { source: string }[] } };
      return s.daemon.draining.some((d) => d.source === 'coordinator');
    });
    // The host cannot lift the operator's drain.
    const local = await fleet.runner(['resume', '--config', config()]);
    expect(local.stdout).toBe('resumed on the host, but still draining: drained by an operator (rbtk runner drain) (lift it with rbtk runner resume)\n');

    const queued = await jobs.submit(shell('echo after operator resume'));
    // Restart the runner: its new session is DRAINING from the hello on.
    expect(await runner.stop('SIGTERM', 10_000)).toBe(false);
    expect(await exitOf(runner)).toBe(0);
    runner = fleet.startRunner('r1');
    await runner.waitForLog((l) => l.msg === 'drained by the coordinator');
    await new Promise((r) => setTimeout(r, 500));
    expect((await runnerJson()).status).toBe('DRAINING');
    expect((await jobs.get(queued.id)).state).toBe('queued');

    const resumed = await fleet.rbtkJson<Runner>(['runner', 'resume', id]);
    expect(resumed).toMatchObject({ status: 'ONLINE', drainReason: null });
    expect(await jobs.waitForState(queued.id, ['succeeded'], 10_000)).toMatchObject({ runnerId: id });
    await runner.waitForLog((l) => l.msg === 'resumed by the coordinator');

    const rows = (await audit()).filter((a) => a.resourceId === id && a.actor.startsWith('admin:'));
    expect(rows.map((a) => a.action)).toEqual(['runner.drain', 'runner.resume']);
    expect(rows[0]!.details).toMatchObject({ by: 'operator', pool: 'build', name: 'r1' });
  });

  it('SIGTERM drains: DRAINING at once, the job in flight finishes, exit 0', async () => {
    const job = await jobs.submit(shell('sleep 4; echo finished'));
    await jobs.waitForState(job.id, ['running']);
    runner.kill('SIGTERM');
    await waitFor('runner DRAINING', async () => (await runnerJson()).status === 'DRAINING', 1_500, 20);
    expect((await runnerJson()).drainReason).toBe('rbtk-runner is stopping (SIGTERM)');
    expect(await exitOf(runner)).toBe(0);
    expect(await jobs.get(job.id)).toMatchObject({ state: 'succeeded', exitCode: 0, attempt: 1 });
    expect(await jobs.log(job.id)).toBe('finished\n');
    expect(runner.lines.some((l) => l.msg === 'draining: waiting for running jobs to finish' && l.shutdownTimeout === '30s')).toBe(true);
  });

  it('a second SIGTERM stops the job now and reports it cancelled with the reason, then the runner exits', async () => {
    runner = fleet.startRunner('r1');
    await waitFor('runner ONLINE', async () => (await fleet.runnerStatus(id)) === 'ONLINE');
    const job = await jobs.submit(shell('echo started; sleep 30'));
    await jobs.waitForState(job.id, ['running']);
    runner.kill('SIGTERM');
    await runner.waitForLog((l) => l.msg === 'draining: waiting for running jobs to finish');
    runner.kill('SIGTERM');
    expect(await exitOf(runner)).toBe(0);
    expect(await jobs.get(job.id)).toMatchObject({
      state: 'cancelled',
      reason: 'rbtk-runner stopped before the job finished: a second SIGTERM asked it to stop at once',
    });
    expect(await jobs.log(job.id)).toBe('started\n');
  });
});

describe('pending upgrade: drain, finish the jobs, exit 75', () => {
  let fleet: Fleet;
  let jobs: Jobs;

  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '5s', heartbeatInterval: '200ms' });
    jobs = new Jobs(fleet);
    expect((await fleet.rbtk(['pool', 'create', 'build'])).code).toBe(0);
  });

  afterAll(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  it('a newer agent installed on disk (seen on SIGHUP): the job finishes, then exit 75', async () => {
    const id = await fleet.registerRunner('build', 'up1', '--executor', 'shell');
    const installed = join(fleet.dir, 'installed-package.json');
    await copyFile(AGENT_PACKAGE_JSON, installed);
    const runner = fleet.startRunner('up1', { RBTK_RUNNER_PACKAGE_JSON: installed });
    await waitFor('runner ONLINE', async () => (await fleet.runnerStatus(id)) === 'ONLINE');

    // SIGHUP with the same version changes nothing.
    runner.kill('SIGHUP');
    await runner.waitForLog((l) => l.msg === 'SIGHUP: checking for an installed upgrade');
    const job = await jobs.submit(shell('sleep 4; echo done'));
    await jobs.waitForState(job.id, ['running']);
    expect(runner.running).toBe(true);

    const pkg = JSON.parse(await readFile(installed, 'utf8')) as { version: string };
    const running = pkg.version;
    await writeFile(installed, JSON.stringify({ ...pkg, version: '99.0.0' }));
    runner.kill('SIGHUP');
    const reason = `rbtk-runner 99.0.0 is installed; this is ${running}`;
    await waitFor('runner DRAINING', async () => (await fleet.rbtkJson<Runner>(['runner', 'show', id])).drainReason === reason, 1_500, 20);
    expect((await jobs.get(job.id)).state).toBe('running');
    expect(await exitOf(runner)).toBe(75);
    expect(await jobs.get(job.id)).toMatchObject({ state: 'succeeded', exitCode: 0 });
    expect(runner.lines).toContainEqual(expect.objectContaining({ msg: 'drained for an upgrade: exiting to be restarted', exitCode: 75 }));
  });

  it('the coordinator asks for a newer runner (--min-runner-version) that is installed: the held job finishes, then exit 75', async () => {
    const id = await fleet.registerRunner('build', 'up2', '--executor', 'shell');
    // The newer agent is on disk already (a restart runs it); test/min-runner-version.test.ts has the case where it is not.
    const installed = join(fleet.dir, 'installed-up2.json');
    const pkg = JSON.parse(await readFile(AGENT_PACKAGE_JSON, 'utf8')) as { version: string };
    await writeFile(installed, JSON.stringify({ ...pkg, version: '99.0.0' }));
    const runner = fleet.startRunner('up2', { RBTK_RUNNER_PACKAGE_JSON: installed });
    await waitFor('runner ONLINE', async () => (await fleet.runnerStatus(id)) === 'ONLINE');
    // Longer than the runner's reconnects can take (full-jitter backoff from 0.5 s: up to 7.5 s over four
    // attempts), so that it is still running when the runner comes back; with 3 s a full run once saw the
    // runner reconnect after the job had ended, so it never logged the wait.
    const job = await jobs.submit(shell('sleep 12; echo done'));
    await jobs.waitForState(job.id, ['running']);

    // The same coordinator (port, data) comes back asking for rbtk-runner 99.0.0 or later.
    fleet.coordinator.kill('SIGKILL');
    await fleet.coordinator.exited;
    await fleet.startCoordinator({ offlineAfter: '5s', heartbeatInterval: '200ms', port: Number(new URL(fleet.url).port), minRunnerVersion: '99.0.0' });
    await runner.waitForLog((l) => l.msg === 'draining: waiting for running jobs to finish' && String(l.reason).includes('99.0.0'), 15_000);
    expect(await exitOf(runner)).toBe(75);
    expect(await jobs.get(job.id)).toMatchObject({ state: 'succeeded', attempt: 1, exitCode: 0 });
    const shown = await fleet.rbtkJson<Runner>(['runner', 'show', id]);
    expect(shown.drainReason).toMatch(/^the coordinator requires rbtk-runner 99\.0\.0 or later; this is \d+\.\d+\.\d+/);
  });
});
