import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEntry, HostedPoolStatus, Runner } from '@rbtk/protocol';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestImage, removeContainersLabelled, requireDocker, TEST_IMAGE } from '../packages/agent/test/helpers/docker.js';
import { HOSTED_DOCKER_DIR } from '../packages/coordinator/src/hosted/start.js';
import { type Coordinator, startCoordinator } from '../packages/coordinator/src/index.js';
import { capturedLogger, sleep } from '../packages/coordinator/test/helpers.js';
import { DockerEndpoint } from './helpers/docker-endpoint.js';
import { adminApi } from './helpers/hosted.js';
import { waitFor } from './helpers/processes.js';

/*
 * The docker provider against a dockerd that takes connections and never
 * answers (helpers/docker-endpoint.ts, given as DOCKER_HOST): every call has
 * a deadline, so the coordinator starts, its passes go on and fail with the
 * timeout logged; a create that times out is a failed try (backoff, its
 * runner removed); and once the Engine answers the pool fills. The
 * coordinator runs in this process, its deadlines shortened through its options.
 */

const haveDocker = await requireDocker('hosted docker provider timeouts');

type Line = Record<string, unknown> & { msg: string; err?: { message?: string } };


const TIMEOUTS = { createMs: 2000, startMs: 15_000, callMs: 1000 };

describe.runIf(haveDocker)('hosted pools: a Docker Engine that never answers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rbtk-docker-hung-'));
  const dataDir = join(dir, 'coordinator');
  const owner = join(dataDir, HOSTED_DOCKER_DIR);
  const endpoint = new DockerEndpoint(join(dir, 'docker.sock'));
  const { logger, lines } = capturedLogger<Line>('info');
  let coordinator: Coordinator | undefined;
  let admin = '';
  let startedInMs = 0;

  const call = adminApi(() => ({ url: coordinator!.url, token: admin }));
  const status = () => call<HostedPoolStatus>('GET', '/v1/pools/hung/hosted');
  const settled = (what: string, ok: (s: HostedPoolStatus) => boolean, timeoutMs = 30_000) =>
    waitFor(what, async () => {
      const s = await status();
      return ok(s) ? s : undefined;
    }, timeoutMs, 100);
  const logged = (from: number, ok: (l: Line) => boolean) => lines.slice(from).filter(ok);

  // Built before DOCKER_HOST is set below: the test's own view of the real engine. The coordinator
  // reads DOCKER_HOST when its docker provider first connects, so it stays set while the file runs.
  const docker = new Docker();

  /** Starts the coordinator on `dataDir`; how long its start took (ms). */
  const start = async (): Promise<number> => {
    const t0 = Date.now();
    coordinator = await startCoordinator({
      dataDir,
      host: '127.0.0.1',
      port: 0,
      logger,
      hostedReconcileIntervalMs: 500,
      hostedDockerAgent: 'host',
      hostedDockerTimeouts: TIMEOUTS,
    });
    return Date.now() - t0;
  };

  beforeAll(async () => {
    await ensureTestImage(docker);
    await endpoint.listen();
    endpoint.mode = 'hang';
    process.env.DOCKER_HOST = endpoint.dockerHost;
    startedInMs = await start();
    admin = readFileSync(coordinator!.adminTokenFile, 'utf8').trim();
  });

  afterAll(async () => {
    // The coordinator first: running, its passes would make members again.
    await coordinator?.stop();
    delete process.env.DOCKER_HOST;
    await endpoint.close();
    await removeContainersLabelled(`rbtk.hosted.owner=${owner}`, docker);
    rmSync(dir, { recursive: true, force: true });
  });

  it('asks the Engine nothing while no docker pool needs it; then its passes go on, each failing on the timed-out call', async () => {
    expect(startedInMs).toBeLessThan(10_000);
    // This data directory never made a docker member: its start and leak scans leave the (hung) Engine alone.
    await sleep(1600); // 3 passes
    expect(endpoint.held).toEqual([]);
    expect(lines.some((l) => /Docker Engine/.test(l.msg))).toBe(false);

    const from = lines.length;
    await call('POST', '/v1/pools', { name: 'hung', type: 'hosted', hosted: { provider: 'docker', image: TEST_IMAGE, target: 1, max: 1 } });
    const timedOutPass = (l: Line) => l.msg === 'reconcile pass failed' && /docker ping: the Docker Engine did not answer within 1s/.test(l.err?.message ?? '');
    await waitFor('passes failing on the hung ping', () => logged(from, timedOutPass).length >= 3, 15_000);
    const s = await status();
    expect(s.members).toEqual([]);
    expect(Date.parse(s.lastReconcileAt!)).toBeGreaterThan(Date.now() - 5000);
    expect(endpoint.held.every((r) => /^GET \S*\/_ping/.test(r))).toBe(true);
  }, 30_000);

  it('a create that times out is a failed try: backoff, the member errored with why, its runner removed', async () => {
    const from = lines.length;
    endpoint.mode = 'hang-create';
    const backingOff = await waitFor('creates backing off', () =>
      logged(from, (l) => l.msg === 'hosted pool: member creates fail, backing off' && l.pool === 'hung')[0], 20_000);
    expect(String(backingOff.err)).toMatch(/docker create: the Docker Engine did not answer within 2s \(request aborted\)/);
    const failed = logged(from, (l) => l.msg === 'hosted member failed to start' && l.pool === 'hung');
    expect(failed[0]?.timedOut).toBe(true);

    const s = await status();
    const errored = s.members.find((m) => m.state === 'errored');
    expect(errored?.error).toMatch(/did not answer within 2s/);
    // Its runner never connected and is gone: not left OFFLINE in `rbtk runner list`.
    expect(errored?.runnerId).toBeNull();
    expect(await call<Runner[]>('GET', '/v1/runners?pool=hung')).toEqual([]);
    const audit = await call<AuditEntry[]>('GET', '/v1/audit?resourceType=runner');
    const revoked = audit.filter((a) => a.action === 'runner.revoke' && a.details.reason === 'hosted member create failed');
    expect(revoked.length).toBeGreaterThanOrEqual(1);
    expect(String(revoked[0]!.details.error)).toMatch(/did not answer/);
  }, 30_000);

  it('fills once the Engine answers; a hung list later leaves the ready member as it is', async () => {
    endpoint.mode = 'forward';
    const ready = await settled('1 ready', (s) => s.counts.ready === 1 && s.members.length === 1, 60_000);
    // Only the member's own runner: the failed tries' runners were removed.
    const runners = await call<Runner[]>('GET', '/v1/runners?pool=hung');
    expect(runners.map((r) => r.id)).toEqual([ready.members[0]!.runnerId]);

    const from = lines.length;
    endpoint.mode = 'hang';
    const timedOutList = (l: Line) => l.msg === 'reconcile pass failed' && /docker list: the Docker Engine did not answer/.test(l.err?.message ?? '');
    await waitFor('passes failing on the hung list', () => logged(from, timedOutList).length >= 2, 15_000);
    const during = await status();
    expect(during.members.map((m) => `${m.id}:${m.state}`)).toEqual([`${ready.members[0]!.id}:ready`]);

    endpoint.mode = 'forward';
    await call('POST', '/v1/pools/hung/hosted', { target: 0 });
    await settled('empty', (s) => s.members.length === 0);
  }, 90_000);

  it('restarted on a data directory that made docker members, starts though dockerd hangs', async () => {
    await coordinator!.stop();
    coordinator = undefined;
    endpoint.mode = 'hang';
    const from = lines.length;
    // The ping that finds the Engine at start is bounded (callMs): before, the coordinator never got to listen.
    expect(await start()).toBeLessThan(10_000);
    expect(logged(from, (l) => /no Docker Engine answers yet/.test(l.msg) && /did not answer within 1s/.test(String(l.err))).length).toBe(1);
    expect(endpoint.held.some((r) => /^GET \S*\/_ping/.test(r))).toBe(true);
  }, 30_000);
});
