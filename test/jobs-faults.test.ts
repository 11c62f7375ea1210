import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Fleet } from './helpers/fleet.js';
import { Jobs, shell } from './helpers/jobs.js';
import { waitFor } from './helpers/processes.js';

/* Nothing lost, nothing twice: runners lost, revoked, and the coordinator killed mid-job. */
describe('jobs under faults', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  const ids: Record<string, string> = {};

  beforeEach(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '1500ms', heartbeatInterval: '200ms' });
    jobs = new Jobs(fleet);
    expect((await fleet.rbtk(['pool', 'create', 'build'])).code).toBe(0);
    for (const name of ['a', 'b']) {
      ids[name] = await fleet.registerRunner('build', name, '--executor', 'shell', '--label', `host=${name}`);
    }
  });

  afterEach(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  async function online(...names: string[]) {
    for (const name of names) {
      await waitFor(`${name} ONLINE`, async () => (await fleet.runnerStatus(ids[name]!)) === 'ONLINE');
    }
  }

  it('requeues the job of a runner that goes OFFLINE, once, and refuses the stale attempt', async () => {
    const a = fleet.startRunner('a');
    await online('a');
    const job = await jobs.submit(shell('echo attempt-start; sleep 2; echo attempt-end', { retries: 1 }));
    expect((await jobs.waitForState(job.id, ['running'])).runnerId).toBe(ids.a);

    a.kill('SIGSTOP');
    await waitFor('a OFFLINE', async () => (await fleet.runnerStatus(ids.a!)) === 'OFFLINE', 10_000);
    fleet.startRunner('b');
    const done = await jobs.waitForState(job.id, ['succeeded'], 30_000);
    expect(done).toMatchObject({ attempt: 2, runnerId: ids.b });

    // a comes back: told to stop its stale attempt; whatever it reports is refused.
    a.kill('SIGCONT');
    await online('a');
    await new Promise((r) => setTimeout(r, 2_500));
    const after = await jobs.get(job.id);
    expect(after).toMatchObject({ state: 'succeeded', attempt: 2, runnerId: ids.b });
    expect(await jobs.log(job.id)).toBe('attempt-start\nattempt-end\n');
  });

  it('fails a lost job without retries left, saying why', async () => {
    const a = fleet.startRunner('a');
    await online('a');
    const job = await jobs.submit(shell('sleep 30'));
    await jobs.waitForState(job.id, ['running']);
    a.kill('SIGSTOP');
    const failed = await jobs.waitForState(job.id, ['failed'], 15_000);
    expect(failed.reason).toMatch(/runner_lost/);

    // Back again, the runner is told to stop the stale attempt: its sleep does not run on for 30 s.
    a.kill('SIGCONT');
    await waitFor('the stale attempt stopped on the runner', async () => {
      const status = await fleet.runner(['status', '--config', fleet.configPath('a'), '--json']);
      const daemon = JSON.parse(status.stdout).daemon;
      return daemon?.connected && daemon.jobs.length === 0;
    }, 20_000);
    expect(await jobs.get(job.id)).toMatchObject({ state: 'failed', attempt: 1 });
  });

  it('requeues a revoked runner\'s job as runner_revoked', async () => {
    fleet.startRunner('a');
    await online('a');
    // Long enough that the revoke (a CLI process, over a second to start on a loaded machine) lands before
    // the first attempt could end on its own.
    const job = await jobs.submit(shell('echo once; sleep 5', { retries: 2, requires: { labels: {} } }));
    await jobs.waitForState(job.id, ['running']);
    expect((await fleet.rbtk(['runner', 'revoke', ids.a!])).code).toBe(0);
    fleet.startRunner('b');
    const done = await jobs.waitForState(job.id, ['succeeded'], 30_000);
    expect(done).toMatchObject({ attempt: 2, runnerId: ids.b });
  });

  it('finishes every job exactly once when the coordinator is SIGKILLed mid-run', async () => {
    fleet.startRunner('a');
    fleet.startRunner('b');
    await online('a', 'b');
    const submitted = [];
    for (let i = 0; i < 12; i++) submitted.push(await jobs.submit(shell(`echo job-${i}; sleep 0.4; echo done-${i}`, { retries: 2 })));
    await new Promise((r) => setTimeout(r, 700));
    await fleet.restartCoordinator('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    await fleet.restartCoordinator('SIGKILL');

    for (const [i, job] of submitted.entries()) {
      const done = await jobs.waitForState(job.id, ['succeeded'], 60_000);
      expect(done.exitCode).toBe(0);
      expect(await jobs.log(job.id)).toBe(`job-${i}\ndone-${i}\n`);
    }
  });
});
