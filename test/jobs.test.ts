import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from './helpers/fleet.js';
import { Jobs, shell } from './helpers/jobs.js';
import { waitFor } from './helpers/processes.js';

/*
 * Jobs end to end: a real coordinator, real rbtk-runner daemons running shell
 * jobs as child processes, and the rbtk CLI. Docker jobs are in jobs-docker.test.ts.
 */
describe('jobs through real runners', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  const runnerIds: Record<string, string> = {};

  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '2s', heartbeatInterval: '200ms' });
    jobs = new Jobs(fleet);
    expect((await fleet.rbtk(['pool', 'create', 'build', '--tag', 'env=ci'])).code).toBe(0);
    for (const name of ['r1', 'r2']) {
      runnerIds[name] = await fleet.registerRunner('build', name, '--executor', 'shell', '--label', `host=${name}`);
      fleet.startRunner(name);
    }
    for (const id of Object.values(runnerIds)) {
      await waitFor('runner ONLINE', async () => (await fleet.runnerStatus(id)) === 'ONLINE');
    }
  });

  afterAll(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  it('runs a shell job to success and streams stdout and stderr with --follow', async () => {
    const res = await fleet.rbtk(['job', 'submit', '--pool', 'build', '--follow', '--', 'sh', '-c', 'echo out-line; echo err-line >&2']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('out-line');
    expect(res.stderr).toContain('err-line');
  });

  it('passes a failing job exit code through, and keeps the full log', async () => {
    const res = await fleet.rbtk(['job', 'submit', '--pool', 'build', '--follow', '--', 'sh', '-c', 'seq 1 2000; exit 3']);
    expect(res.code).toBe(3);
    const lines = res.stdout.trim().split('\n');
    expect(lines.slice(-2000)).toEqual(Array.from({ length: 2000 }, (_, i) => String(i + 1)));
  });

  it('prints the job id, then show/logs/list find it', async () => {
    const submitted = await fleet.rbtk(['job', 'submit', '--pool', 'build', '--', 'echo', 'hello from rbtk']);
    expect(submitted.code, submitted.stderr).toBe(0);
    const id = submitted.stdout.trim();
    const done = await jobs.waitForState(id, ['succeeded']);
    expect(done).toMatchObject({ pool: 'build', attempt: 1, exitCode: 0 });
    const logs = await fleet.rbtk(['job', 'logs', id]);
    expect(logs.stdout).toContain('hello from rbtk');
    const list = await fleet.rbtkJson<{ id: string }[]>(['job', 'list', '--pool', 'build', '--state', 'succeeded']);
    expect(list.map((j) => j.id)).toContain(id);
  });

  it('times a job out and cancels another', async () => {
    const timedOut = await fleet.rbtk(['job', 'submit', '--pool', 'build', '--timeout', '1s', '--follow', '--', 'sleep', '30']);
    expect(timedOut.code).toBe(124);

    const job = await jobs.submit(shell('echo started; sleep 30'));
    await jobs.waitForState(job.id, ['running']);
    const cancel = await fleet.rbtk(['job', 'cancel', job.id]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect((await jobs.waitForState(job.id, ['cancelled'], 20_000)).state).toBe('cancelled');
  });

  it('routes by pool, selector and labels, and refuses what no pool could take', async () => {
    const bySelector = await jobs.submit({ selector: { env: 'ci' }, executor: { type: 'shell', command: ['true'] } });
    expect(bySelector.pool).toBe('build');
    const byLabel = await jobs.submit(shell('true', { requires: { labels: { host: 'r2' } } }));
    expect((await jobs.waitForState(byLabel.id, ['succeeded'])).runnerId).toBe(runnerIds.r2);

    for (const [args, why] of [
      [['--pool', 'nope'], /does not exist/],
      [['--selector', 'env=prod'], /no pool/],
      [['--pool', 'build', '--require', 'host=r9'], /host=r9/],
    ] as const) {
      const res = await fleet.rbtk(['job', 'submit', ...args, '--', 'true']);
      expect(res.code, args.join(' ')).not.toBe(0);
      expect(res.stderr).toMatch(why);
    }
  });

  it('shares one queue between two runners, FIFO, one job per slot', async () => {
    const submitted = [];
    for (let i = 0; i < 6; i++) submitted.push(await jobs.submit(shell(`echo job-${i}; sleep 0.3`)));
    const finished = await Promise.all(submitted.map((j) => jobs.waitForState(j.id, ['succeeded'])));
    expect(new Set(finished.map((j) => j.runnerId))).toEqual(new Set(Object.values(runnerIds)));
    for (const [i, job] of finished.entries()) expect(await jobs.log(job.id)).toBe(`job-${i}\n`);
  });

  it('returns the same job for the same idempotency key', async () => {
    const a = await jobs.submit(shell('true', { idempotencyKey: 'deploy-42' }));
    const b = await jobs.submit(shell('true', { idempotencyKey: 'deploy-42' }));
    expect(b.id).toBe(a.id);
  });

  it('loses no log byte across a disconnect shorter than offline-after', async () => {
    const job = await jobs.submit(shell('for i in $(seq 1 30); do echo line-$i; sleep 0.05; done', { requires: { labels: { host: 'r1' } } }));
    await jobs.waitForState(job.id, ['running']);
    const r1 = fleet.procs.find('runner r1');
    r1.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 1_000));
    r1.kill('SIGCONT');
    const done = await jobs.waitForState(job.id, ['succeeded']);
    expect(done.attempt).toBe(1);
    expect(await jobs.log(job.id)).toBe(Array.from({ length: 30 }, (_, i) => `line-${i + 1}\n`).join(''));
  });
});
