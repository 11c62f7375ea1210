import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../helpers/fleet.js';
import { Jobs, shell } from '../helpers/jobs.js';
import { waitFor } from '../helpers/processes.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { jobEvents, pointRunnerAt, runnerStatus, terminalEvents } from './fault-helpers.js';

const OFFLINE_AFTER_MS = 6_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/* A TCP proxy between runner "a" and the coordinator: partitions it cuts, stalls and slows. */
describe('network partitions between a runner and the coordinator', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  let proxy: TcpProxy;
  const ids: Record<string, string> = {};

  // One fleet for the file (registrations are CLI processes, slow on a busy machine); each test starts its runners.
  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: `${OFFLINE_AFTER_MS}ms`, heartbeatInterval: '200ms' });
    jobs = new Jobs(fleet);
    proxy = await TcpProxy.start(fleet.url);
    expect((await fleet.rbtk(['pool', 'create', 'build'])).code).toBe(0);
    for (const name of ['a', 'b']) {
      ids[name] = await fleet.registerRunner('build', name, '--executor', 'shell');
    }
    await pointRunnerAt(fleet, 'a', proxy.url);
  });

  afterEach(async () => {
    proxy.heal();
    proxy.delay(0);
    for (const name of ['a', 'b']) {
      const runner = running(`runner ${name}`);
      if (runner) expect(await runner.stop('SIGTERM', 10_000), `runner ${name} stopped on SIGTERM`).toBe(false);
    }
  });

  afterAll(async () => {
    await proxy.close();
    expect(await fleet.close()).toEqual([]);
  });

  const running = (name: string) => {
    try {
      return fleet.procs.find(name);
    } catch {
      return undefined;
    }
  };
  const online = (name: string) => waitFor(`${name} ONLINE`, async () => (await runnerStatus(fleet, ids[name]!)) === 'ONLINE');

  /** 30 numbered lines over ~3 s. */
  const numbered = shell('i=1; while [ $i -le 30 ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done', { retries: 1 });
  const expectedLog = Array.from({ length: 30 }, (_, i) => `line ${i + 1}\n`).join('');

  it('a stall shorter than --offline-after requeues nothing and loses no log byte', async () => {
    fleet.startRunner('a');
    await online('a');
    const job = await jobs.submit(numbered);
    await jobs.waitForState(job.id, ['running']);
    await sleep(500);
    proxy.stall();
    await sleep(300);
    const during = (await jobs.get(job.id)).logBytes;
    await sleep(OFFLINE_AFTER_MS / 3 - 300);
    // The stall held: no log byte got through, and the runner is not yet OFFLINE.
    expect((await jobs.get(job.id)).logBytes).toBe(during);
    expect(await runnerStatus(fleet, ids.a!)).toBe('ONLINE');
    proxy.heal();

    const done = await jobs.waitForState(job.id, ['succeeded'], 30_000);
    expect(done).toMatchObject({ attempt: 1, runnerId: ids.a, exitCode: 0 });
    expect(await jobs.log(job.id)).toBe(expectedLog);
    const events = jobEvents(fleet).get(job.id)!;
    expect(events.map((e) => e.state)).toEqual(['queued', 'assigned', 'running', 'succeeded']);
  });

  it('a cut shorter than --offline-after requeues nothing and loses no log byte', async () => {
    fleet.startRunner('a');
    await online('a');
    const job = await jobs.submit(numbered);
    await jobs.waitForState(job.id, ['running']);
    await sleep(500);
    const before = proxy.accepted;
    proxy.cut();
    // Long enough for a few refused reconnects; short enough that their backoff stays well under --offline-after.
    await sleep(1_000);
    proxy.heal();
    await waitFor('runner a reconnected through the proxy', () => proxy.accepted > before);

    const done = await jobs.waitForState(job.id, ['succeeded'], 30_000);
    expect(done).toMatchObject({ attempt: 1, runnerId: ids.a, exitCode: 0 });
    expect(await jobs.log(job.id)).toBe(expectedLog);
    expect(jobEvents(fleet).get(job.id)!.map((e) => e.state)).toEqual(['queued', 'assigned', 'running', 'succeeded']);
  });

  it('a delayed link still carries every log byte, in order', async () => {
    fleet.startRunner('a');
    await online('a');
    proxy.delay(150);
    const job = await jobs.submit(numbered);
    const done = await jobs.waitForState(job.id, ['succeeded'], 30_000);
    expect(done).toMatchObject({ attempt: 1, runnerId: ids.a });
    expect(await jobs.log(job.id)).toBe(expectedLog);
  });

  it('a stall longer than --offline-after requeues the in-flight job once and refuses the stale result', async () => {
    const a = fleet.startRunner('a');
    await online('a');
    const job = await jobs.submit(shell('echo begin; sleep 2; echo end', { retries: 1 }));
    expect((await jobs.waitForState(job.id, ['running'])).runnerId).toBe(ids.a);

    proxy.stall();
    await waitFor('a OFFLINE', async () => (await runnerStatus(fleet, ids.a!)) === 'OFFLINE', 15_000);
    fleet.startRunner('b');
    const done = await jobs.waitForState(job.id, ['succeeded'], 30_000);
    expect(done).toMatchObject({ attempt: 2, runnerId: ids.b });

    // The partition heals: a reports attempt 1 (finished or stopped as stale) and hears it refused.
    proxy.heal();
    await a.waitForLog((l) => l.msg === 'the coordinator refused the result' && l.jobId === job.id && l.attempt === 1, 20_000);
    await online('a');

    expect(await jobs.get(job.id)).toMatchObject({ state: 'succeeded', attempt: 2, runnerId: ids.b });
    expect(await jobs.log(job.id)).toBe('begin\nend\n');
    const events = jobEvents(fleet).get(job.id)!;
    expect(events.filter((e) => e.state === 'queued' && e.reason === 'runner_lost')).toHaveLength(1);
    expect(terminalEvents(events)).toEqual([expect.objectContaining({ state: 'succeeded', attempt: 2, runnerId: ids.b })]);
    expect(events.map((e) => `${e.state}:${e.attempt}`)).toEqual([
      'queued:0', 'assigned:1', 'running:1', 'queued:1', 'assigned:2', 'running:2', 'succeeded:2',
    ]);
  });
});
