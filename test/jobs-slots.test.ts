import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Fleet } from './helpers/fleet.js';
import { Jobs, shell } from './helpers/jobs.js';
import { waitFor, type Proc } from './helpers/processes.js';

/*
 * A pool whose only runner (max_jobs 1) is still busy with an attempt the
 * coordinator took away from it: the coordinator waits for that attempt to
 * end before it offers the runner the job again, so the runner never has to
 * refuse it for want of a slot (and is never shut out of the job for that).
 */
describe('slots held by attempts being stopped', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  let runnerId = '';
  let runner: Proc;

  beforeEach(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '3s', heartbeatInterval: '200ms', acceptTimeout: '1s' });
    jobs = new Jobs(fleet);
    expect((await fleet.rbtk(['pool', 'create', 'build'])).code).toBe(0);
    runnerId = await fleet.registerRunner('build', 'only', '--executor', 'shell');
    runner = fleet.startRunner('only');
    await waitFor('the runner ONLINE', async () => (await fleet.runnerStatus(runnerId)) === 'ONLINE');
  });

  afterEach(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  const rejected = () => runner.lines.filter((l) => l.msg === 'job rejected');

  it('runs the job on the runner that accepted it too late', async () => {
    runner.kill('SIGSTOP');
    const job = await jobs.submit(shell('echo ran'));
    // Past the 1 s accept timeout, short of the 3 s OFFLINE mark. The coordinator's ping (every 1 s) may
    // terminate the socket meanwhile: then the runner comes back through hello, holding attempt 1 while its
    // spool is written. Either way the slot stays taken until attempt 1 ends. (The live-socket path alone,
    // deterministically: packages/coordinator/test/jobs-dispatch.test.ts.)
    await new Promise((r) => setTimeout(r, 1_500));
    runner.kill('SIGCONT');
    const done = await jobs.waitForState(job.id, ['succeeded'], 20_000);
    expect(done.attempt).toBeGreaterThanOrEqual(2);
    expect(done.runnerId).toBe(runnerId);
    expect(await jobs.log(job.id)).toBe('ran\n');
    expect(rejected()).toEqual([]);
  });

  it('gives the job back to its runner once the runner has stopped the attempt it lost while away', async () => {
    // The attempt takes a second to stop: until then it holds the runner's only slot.
    const job = await jobs.submit(shell('trap "sleep 1; exit 143" TERM; echo start; sleep 30 & wait; echo end', { retries: 1 }));
    await jobs.waitForState(job.id, ['running']);
    runner.kill('SIGSTOP');
    const lost = await jobs.waitForState(job.id, ['queued'], 15_000);
    expect(lost.reason).toBe('runner_lost');
    runner.kill('SIGCONT');
    // Back: told to stop attempt 1; attempt 2 goes to it once attempt 1 has ended.
    const second = await jobs.waitForState(job.id, ['running'], 20_000);
    expect(second).toMatchObject({ attempt: 2, runnerId });
    expect(rejected()).toEqual([]);
    await jobs.cancel(job.id);
    expect((await jobs.waitForState(job.id, ['cancelled'])).attempt).toBe(2);
  });
});
