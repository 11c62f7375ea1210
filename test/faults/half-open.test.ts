import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../helpers/fleet.js';
import { Jobs, shell } from '../helpers/jobs.js';
import { waitFor } from '../helpers/processes.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { jobEvents, pointRunnerAt, runnerStatus } from './fault-helpers.js';

const OFFLINE_AFTER_MS = 5_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/*
 * A NAT or firewall that drops a flow's state without a RST: the runner's
 * connection stays open and carries nothing, while new connections work. The
 * runner must notice and reconnect before the coordinator's --offline-after
 * (a 1 s interval: it used to notice only after offlineAfter plus a tick, when
 * its job had already been requeued as runner_lost and ran twice).
 */
describe('a half-open connection between a runner and the coordinator', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  let proxy: TcpProxy;
  let id: string;

  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: `${OFFLINE_AFTER_MS}ms`, heartbeatInterval: '1s' });
    jobs = new Jobs(fleet);
    proxy = await TcpProxy.start(fleet.url);
    expect((await fleet.rbtk(['pool', 'create', 'build'])).code).toBe(0);
    id = await fleet.registerRunner('build', 'a', '--executor', 'shell');
    await pointRunnerAt(fleet, 'a', proxy.url);
  });

  afterAll(async () => {
    await proxy?.close();
    expect(await fleet.close()).toEqual([]);
  });

  it('is replaced before --offline-after: the running job is not requeued and no log byte is lost', async () => {
    const runner = fleet.startRunner('a');
    await waitFor('a ONLINE', async () => (await runnerStatus(fleet, id)) === 'ONLINE');
    // 40 lines over ~10 s: it runs through the whole stall and the reconnect.
    const job = await jobs.submit(shell('i=1; while [ $i -le 40 ]; do echo "line $i"; i=$((i+1)); sleep 0.25; done'));
    expect((await jobs.waitForState(job.id, ['running'])).runnerId).toBe(id);
    await sleep(500);

    const accepted = proxy.accepted;
    const stalledAt = Date.now();
    proxy.stallConnections();
    await waitFor('a reconnected through the proxy', () => proxy.accepted > accepted, 2 * OFFLINE_AFTER_MS);
    const reconnectedAfterMs = Date.now() - stalledAt;
    await runner.waitForLog((l) => l.msg === 'coordinator stopped answering heartbeats; dropping the connection');
    expect(reconnectedAfterMs, 'reconnected before --offline-after').toBeLessThan(OFFLINE_AFTER_MS);

    const done = await jobs.waitForState(job.id, ['succeeded'], 30_000);
    expect(done).toMatchObject({ attempt: 1, runnerId: id, exitCode: 0 });
    expect(await jobs.log(job.id)).toBe(Array.from({ length: 40 }, (_, i) => `line ${i + 1}\n`).join(''));
    expect(jobEvents(fleet).get(job.id)!.map((e) => e.state)).toEqual(['queued', 'assigned', 'running', 'succeeded']);
    // Past the moment the old connection's last heartbeat would have made it OFFLINE: it never was.
    await sleep(Math.max(0, stalledAt + OFFLINE_AFTER_MS + 1_500 - Date.now()));
    expect(fleet.coordinator.lines.filter((l) => l.msg === 'runner offline' && l.runnerId === id)).toEqual([]);
    expect(await runnerStatus(fleet, id)).toBe('ONLINE');
  });
});
