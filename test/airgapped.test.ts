import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestImage, requireDocker, TEST_IMAGE } from '../packages/agent/test/helpers/docker.js';
import { Fleet } from './helpers/fleet.js';
import { Jobs } from './helpers/jobs.js';
import { BIN, waitFor } from './helpers/processes.js';
import { requireStrace } from './helpers/strace.js';

const hasDocker = await requireDocker('air-gapped e2e tests');
const hasStrace = requireStrace('the air-gapped connect() trace');

/** An internal network (no route out) that the "lab" pool lets its job containers join. */
const INTERNAL_NETWORK = 'rbtk-test-internal';

/*
 * Air-gapped hosts end to end: a real coordinator, an air-gapped rbtk-runner
 * traced with strace (every connect() it or its children make), and the real
 * dockerd, whose event stream shows that nothing is ever pulled.
 */
describe.skipIf(!hasDocker)('air-gapped pools and runners with a real dockerd', () => {
  const docker = new Docker();
  let fleet: Fleet;
  let jobs: Jobs;
  let traced: ChildProcess | undefined;
  const traceFile = () => join(fleet.dir, 'connect.trace');
  const events: { Type?: string; Action?: string; Actor?: { ID?: string } }[] = [];
  let eventStream: NodeJS.ReadableStream & { destroy(): void };

  beforeAll(async () => {
    await ensureTestImage();
    if (!(await docker.listNetworks({ filters: { name: [INTERNAL_NETWORK] } })).some((n) => n.Name === INTERNAL_NETWORK)) {
      await docker.createNetwork({ Name: INTERNAL_NETWORK, Internal: true });
    }
    eventStream = (await docker.getEvents({ filters: { type: ['image'] } })) as typeof eventStream;
    eventStream.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) events.push(JSON.parse(line));
    });

    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '3s', heartbeatInterval: '200ms' });
    jobs = new Jobs(fleet);
    for (const args of [
      ['pool', 'create', 'vault', '--airgapped'],
      ['pool', 'create', 'lab', '--airgapped', '--allow-non-airgapped-jobs', '--docker-network', INTERNAL_NETWORK],
      ['pool', 'create', 'open'],
    ]) expect((await fleet.rbtk(args)).code).toBe(0);

    await fleet.registerRunner('vault', 'vault-host', '--airgapped', '--executor', 'docker', '--max-jobs', '2');
    await fleet.registerRunner('lab', 'lab-host', '--airgapped', '--executor', 'docker');
    await fleet.registerRunner('open', 'open-host', '--executor', 'docker');
    // The vault runner runs under strace: every connect() of it and its children is recorded.
    const args = ['run', '--config', fleet.configPath('vault-host')];
    traced = hasStrace
      ? spawn('strace', ['-f', '-qq', '-e', 'trace=connect', '-o', traceFile(), process.execPath, BIN.runner, ...args], { stdio: 'ignore' })
      : spawn(process.execPath, [BIN.runner, ...args], { stdio: 'ignore' });
    fleet.startRunner('lab-host');
    fleet.startRunner('open-host');
    for (const name of ['vault-host', 'lab-host', 'open-host']) {
      await waitFor(`${name} ONLINE`, async () => {
        const list = await fleet.rbtkJson<{ name: string; status: string }[]>(['runner', 'list']);
        return list.find((r) => r.name === name)?.status === 'ONLINE';
      });
    }
  });

  afterAll(async () => {
    eventStream?.destroy();
    if (traced && traced.exitCode === null) {
      traced.kill('SIGKILL');
    }
    expect(await fleet.close()).toEqual([]);
    await docker.getNetwork(INTERNAL_NETWORK).remove().catch(() => undefined);
  });

  const dockerJob = (pool: string, script: string, extra: Record<string, unknown> = {}) => ({
    pool,
    executor: { type: 'docker' as const, image: TEST_IMAGE, pull: 'never' as const, command: ['sh', '-c', script] },
    ...extra,
  });

  it('runs an air-gapped job in a container with no network at all', async () => {
    const job = await jobs.submit(dockerJob('vault', 'ls /sys/class/net', { requires: { airgapped: true } }));
    expect((await jobs.waitForState(job.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    expect((await jobs.log(job.id)).split(/\s+/).filter(Boolean)).toEqual(['lo']);
  });

  it('joins the internal network the pool names, and no other', async () => {
    const job = await jobs.submit(dockerJob('lab', 'ls /sys/class/net'));
    expect((await jobs.waitForState(job.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    expect((await jobs.log(job.id)).split(/\s+/).filter(Boolean).sort()).toEqual(['eth0', 'lo']);
    const pool = await fleet.rbtkJson<{ dockerNetwork: string | null; allowNonAirgappedJobs: boolean }>(['pool', 'show', 'lab']);
    expect(pool).toMatchObject({ dockerNetwork: INTERNAL_NETWORK, allowNonAirgappedJobs: true });
  });

  it('fails a job whose image is not on the host at once, with the docker load hint, and never pulls', async () => {
    const before = events.length;
    const job = await jobs.submit(dockerJob('vault', 'true', {
      requires: { airgapped: true },
      executor: { type: 'docker', image: 'rbtk-test/not-here:1', pull: 'if-not-present', command: ['true'] },
    }));
    const failed = await jobs.waitForState(job.id, ['failed']);
    expect(failed.reason).toBe('image rbtk-test/not-here:1 is not on this air-gapped host; load it with `docker load`');
    // A tag made after the job ended shows up in the stream: it is live, so a pull would have too.
    await docker.getImage(TEST_IMAGE).tag({ repo: 'rbtk-test/probe', tag: 'live' });
    await waitFor('tag event', async () => events.slice(before).some((e) => e.Action === 'tag'));
    await docker.getImage('rbtk-test/probe:live').remove();
    expect(events.slice(before).filter((e) => e.Action === 'pull')).toEqual([]);
  });

  it('admits jobs and runners both ways, and says why when it refuses', async () => {
    const notMarked = await fleet.rbtk(['job', 'submit', '--pool', 'vault', '--image', TEST_IMAGE, '--', 'true']);
    expect(notMarked.code).toBe(1);
    expect(notMarked.stderr).toContain('pool "vault" is air-gapped and takes only jobs that require it');
    const marked = await fleet.rbtk(['job', 'submit', '--pool', 'vault', '--airgapped', '--image', TEST_IMAGE, '--pull', 'never', '--follow', '--', 'echo', 'inside']);
    expect(marked.code, marked.stderr).toBe(0);
    expect(marked.stdout).toContain('inside');
    const pullAlways = await fleet.rbtk(['job', 'submit', '--pool', 'vault', '--airgapped', '--image', TEST_IMAGE, '--pull', 'always', '--', 'true']);
    expect(pullAlways.stderr).toContain('its runners never pull');
    const wantsAirgap = await fleet.rbtk(['job', 'submit', '--pool', 'open', '--airgapped', '--image', TEST_IMAGE, '--', 'true']);
    expect(wantsAirgap.stderr).toContain('job requires an air-gapped pool, and pool "open" is not air-gapped');
    const refused = await fleet.register('not-airgapped', await fleet.mintToken('vault'));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('only runners registered with --airgapped may join');
  });

  it.skipIf(!hasStrace)('opens no connection except to its coordinator and the local Docker Engine', async () => {
    // Stop it so the trace is complete (SIGTERM drains; strace exits with it).
    const tracee = Number(execFileSync('pgrep', ['-P', String(traced!.pid)]).toString().trim().split('\n')[0]);
    process.kill(tracee, 'SIGTERM');
    await new Promise((resolve) => traced!.once('exit', resolve));
    const port = new URL(fleet.url).port;
    const connects = (await readFile(traceFile(), 'utf8')).split('\n').filter((l) => l.includes('connect('));
    expect(connects.length).toBeGreaterThan(0);
    const allowed = (line: string) =>
      line.includes(`sin_port=htons(${port}), sin_addr=inet_addr("127.0.0.1")`) ||
      line.includes('sun_path="/var/run/docker.sock"') ||
      line.includes('sun_path="/run/docker.sock"') ||
      // Its own control socket: at start it checks that no other daemon answers there.
      /sun_path="[^"]*control\.sock"/.test(line) ||
      // glibc's local name-service cache (user and host look-ups of the host facts); a DNS query would show as port 53.
      line.includes('sun_path="/var/run/nscd/socket"');
    expect(connects.filter((l) => !allowed(l))).toEqual([]);
    expect(connects.some((l) => l.includes(`htons(${port})`))).toBe(true);
  });
});
