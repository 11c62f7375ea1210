import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { AuditEntry, HostedPoolStatus, Pool } from '@rbtk/protocol';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containersLabelled, ensureTestImage, removeContainersLabelled, requireDocker, TEST_IMAGE } from '../packages/agent/test/helpers/docker.js';
import { Fleet } from './helpers/fleet.js';
import { killMembers, processMembers, procState } from './helpers/hosted.js';
import { waitFor } from './helpers/processes.js';

/*
 * Hosted pools when a provider fails or changes, end to end with real
 * providers: creates that fail at once (backoff, and the other pools keep
 * reconciling), a pool moved from one provider to the other (each member is
 * torn down by the provider that made it, stopped ones included), a dockerd
 * that answers only after the coordinator started, and one that goes away
 * during a provider change. The coordinator of the docker part reaches the
 * real dockerd through a unix socket proxy this file starts and stops.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FLAGS = { offlineAfter: '3s', heartbeatInterval: '200ms', reconcileInterval: '1s' };

async function status(fleet: Fleet, pool: string): Promise<HostedPoolStatus> {
  return (await fleet.rbtkJson<Pool & { hostedStatus: HostedPoolStatus }>(['pool', 'show', pool])).hostedStatus;
}

function settled(fleet: Fleet, pool: string, what: string, ok: (s: HostedPoolStatus) => boolean, timeoutMs = 40_000): Promise<HostedPoolStatus> {
  return waitFor(`${pool}: ${what}`, async () => {
    const s = await status(fleet, pool);
    return ok(s) ? s : undefined;
  }, timeoutMs, 200);
}

async function rbtkOk(fleet: Fleet, args: string[]): Promise<void> {
  const res = await fleet.rbtk(args);
  expect(res.code, res.stderr).toBe(0);
}

/** Create failures the coordinator logged for the pool since log line `from`. */
function createFailures(fleet: Fleet, pool: string, from: number): number {
  return fleet.coordinator.lines.slice(from).filter((l) => l.msg === 'hosted member failed to start' && l.pool === pool).length;
}

/**
 * A fleet with a coordinator on FLAGS for the describe block it is called in;
 * its members are killed and nothing may be left at the end.
 */
function processFleet(): Fleet {
  const box = {} as { fleet?: Fleet };
  beforeAll(async () => {
    box.fleet = await Fleet.create();
    await box.fleet.startCoordinator(FLAGS);
  });
  afterAll(async () => {
    if (!box.fleet) return;
    killMembers(box.fleet.dataDir);
    expect(await box.fleet.close()).toEqual([]);
  });
  // The fleet exists only once beforeAll ran: the tests reach it through this proxy.
  return new Proxy({} as Fleet, { get: (_t, key) => Reflect.get(box.fleet!, key, box.fleet) });
}

describe('hosted pools: creates that fail at once', () => {
  const fleet = processFleet();

  it('back off (a bounded number of tries, logged once a step) while another pool keeps reconciling; a spec change tries again at once', async () => {
    await rbtkOk(fleet, ['pool', 'create', 'ok', '--type', 'hosted', '--provider', 'process', '--target', '1']);
    await settled(fleet, 'ok', '1 ready', (s) => s.counts.ready === 1 && s.members.length === 1);

    // DATA_DIR/hosted/broken is a file: every create of pool broken fails at its mkdir (ENOTDIR) within a millisecond.
    const inTheWay = join(fleet.dataDir, 'hosted', 'broken');
    writeFileSync(inTheWay, '');
    const from = fleet.coordinator.lines.length;
    await rbtkOk(fleet, ['pool', 'create', 'broken', '--type', 'hosted', '--provider', 'process', '--target', '10']);
    await waitFor('a first failed create', () => createFailures(fleet, 'broken', from) > 0, 10_000);
    const okBefore = Date.parse((await status(fleet, 'ok')).lastReconcileAt!);
    await sleep(5000);

    // A first batch (8), then one try per step of 1 s, 2 s, 4 s: not thousands.
    const failures = createFailures(fleet, 'broken', from);
    expect(failures).toBeGreaterThanOrEqual(8);
    expect(failures).toBeLessThanOrEqual(12);
    const steps = fleet.coordinator.lines.slice(from).filter((l) => l.msg === 'hosted pool: member creates fail, backing off' && l.pool === 'broken');
    expect(steps.map((l) => l.retryInMs)).toEqual([1000, 2000, 4000].slice(0, steps.length));
    expect(steps.length).toBeGreaterThanOrEqual(2);
    const broken = await status(fleet, 'broken');
    expect(broken.counts.ready).toBe(0);
    expect(broken.members.length).toBeLessThanOrEqual(8);
    // The failed members stay in sight, with why, while the pool waits.
    expect(broken.members.some((m) => m.state === 'errored' && /not a directory/i.test(m.error ?? ''))).toBe(true);
    // The periodic loop (1 s) went on for the healthy pool all along.
    const okAfter = Date.parse((await status(fleet, 'ok')).lastReconcileAt!);
    expect(okAfter - okBefore).toBeGreaterThanOrEqual(3000);

    // Fixed, and the spec changed: tried again at once rather than after the 8 s step.
    rmSync(inTheWay);
    await rbtkOk(fleet, ['pool', 'update', 'broken', '--target', '1']);
    const fixed = await settled(fleet, 'broken', '1 ready', (s) => s.counts.ready === 1 && s.members.length === 1, 6000);
    expect(fixed.members[0]!.current).toBe(true);
  }, 60_000);
});

describe('hosted pools: a removal that fails', () => {
  const fleet = processFleet();

  it('leaves the member errored with why, the passes complete all the same, and a later pass removes it', async () => {
    await rbtkOk(fleet, ['pool', 'create', 'stuck', '--type', 'hosted', '--provider', 'process', '--target', '1']);
    const [m] = (await settled(fleet, 'stuck', '1 ready', (s) => s.counts.ready === 1 && s.members.length === 1)).members;
    // The pool's folder moved away, a file in its place: the provider no longer finds the member, ends its
    // process (found by its command line), and then fails to remove its folder (ENOTDIR).
    const poolDir = join(fleet.dataDir, 'hosted', 'stuck');
    renameSync(poolDir, `${poolDir}.away`);
    writeFileSync(poolDir, '');
    const from = fleet.coordinator.lines.length;
    const brokenAt = Date.now();
    const failedRemoval = (s: HostedPoolStatus) => s.members.some((x) => x.id === m!.id && x.state === 'errored' && /not a directory/i.test(x.error ?? ''));
    await settled(fleet, 'stuck', 'its removal failed, passes completing', (s) => Date.parse(s.lastReconcileAt ?? '0') > brokenAt + 1500 && failedRemoval(s), 15_000);
    expect(fleet.coordinator.lines.slice(from).some((l) => l.msg === 'hosted member remove failed' && l.memberId === m!.id)).toBe(true);
    expect(processMembers(fleet.dataDir).filter((x) => x.memberId === m!.id)).toEqual([]);

    rmSync(poolDir);
    renameSync(`${poolDir}.away`, poolDir);
    await settled(fleet, 'stuck', 'removed, and replaced', (s) => !s.members.some((x) => x.id === m!.id) && s.counts.ready === 1);
    expect(existsSync(join(poolDir, m!.id))).toBe(false);
  }, 60_000);
});

/** A unix socket in front of the real Docker socket: up() is a dockerd that answers, down() one that is gone (socket file too). */
class DockerSocketProxy {
  private server: Server | undefined;
  private readonly open = new Set<Socket>();

  constructor(
    readonly path: string,
    private readonly upstream = '/var/run/docker.sock',
  ) {}

  async up(): Promise<void> {
    rmSync(this.path, { force: true });
    const server = createServer((client) => {
      const engine = connect(this.upstream);
      for (const s of [client, engine]) {
        this.open.add(s);
        s.on('error', () => s.destroy());
        s.on('close', () => {
          this.open.delete(s);
          client.destroy();
          engine.destroy();
        });
      }
      client.pipe(engine);
      engine.pipe(client);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.path, resolve));
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.open) s.destroy();
    await closed;
  }
}

const haveDocker = await requireDocker('hosted pools with a docker provider that comes and goes');

describe.runIf(haveDocker)('hosted pools: members follow their own provider; a dockerd that comes late or goes away', () => {
  // Built before DOCKER_HOST is set below: the test's own view of the real engine.
  const docker = new Docker();
  let fleet: Fleet;
  let proxy: DockerSocketProxy;
  let owner: string;
  const containers = async (pool: string) =>
    (await containersLabelled(`rbtk.hosted.owner=${owner}`, docker)).filter((c) => c.Labels['rbtk.hosted.pool'] === pool);
  const processesOf = (pool: string) => processMembers(fleet.dataDir).filter((m) => m.pool === pool);

  beforeAll(async () => {
    await ensureTestImage(docker);
    fleet = await Fleet.create();
    owner = join(fleet.dataDir, 'hosted-docker');
    proxy = new DockerSocketProxy(join(fleet.dir, 'docker.sock'));
    // Nothing listens there yet: the coordinator starts with no Docker Engine.
    await fleet.startCoordinator({ ...FLAGS, env: { DOCKER_HOST: `unix://${proxy.path}`, RBTK_HOSTED_DOCKER_AGENT: 'host' } });
  });

  afterAll(async () => {
    const leftover = fleet ? await fleet.close() : [];
    await proxy?.down();
    if (fleet) killMembers(fleet.dataDir);
    if (owner) await removeContainersLabelled(`rbtk.hosted.owner=${owner}`, docker);
    expect(leftover).toEqual([]);
  });

  it('the docker provider comes on once a Docker Engine answers, though none did at start', async () => {
    await rbtkOk(fleet, ['pool', 'create', 'late', '--type', 'hosted', '--provider', 'docker', '--image', TEST_IMAGE, '--target', '1']);
    await sleep(2500); // a few passes (1 s) with no engine
    expect((await status(fleet, 'late')).members).toEqual([]);

    await proxy.up();
    const up = await settled(fleet, 'late', '1 ready', (s) => s.counts.ready === 1 && s.members.length === 1, 60_000);
    expect((await containers('late')).map((c) => c.Labels['rbtk.hosted.member'])).toEqual([up.members[0]!.id]);
  }, 90_000);

  it('moved to process while dockerd is gone: the new member comes, passes go on, the old one goes once dockerd is back', async () => {
    const [old] = (await status(fleet, 'late')).members;
    await proxy.down();
    const changedAt = Date.now();
    await rbtkOk(fleet, ['pool', 'update', 'late', '--provider', 'process']);

    // The old one is let go by the first pass that finds the new one ready (a roll), which may be the
    // pass after the one during which it said hello: wait for that, not for any pass after the hello.
    const during = await settled(fleet, 'late', 'a process member ready, the docker one let go, passes completing', (s) =>
      s.members.some((m) => m.id !== old!.id && m.state === 'ready') &&
      s.members.some((m) => m.id === old!.id && m.state !== 'ready') &&
      Date.parse(s.lastReconcileAt ?? '0') > changedAt + 1000,
    );
    // Not forgotten: only its own provider can remove it, and that one is down.
    const kept = during.members.find((m) => m.id === old!.id);
    expect(kept?.state).toBe('errored');
    expect(kept?.error).toMatch(/Docker Engine/);
    expect((await containers('late')).map((c) => c.Labels['rbtk.hosted.member'])).toEqual([old!.id]);

    await proxy.up();
    const after = await settled(fleet, 'late', 'the docker member removed', (s) => !s.members.some((m) => m.id === old!.id), 30_000);
    expect(await containers('late')).toEqual([]);
    expect(processesOf('late').map((m) => m.memberId)).toEqual(after.members.map((m) => m.id));
    await rbtkOk(fleet, ['pool', 'update', 'late', '--target', '0']);
    await settled(fleet, 'late', 'empty', (s) => s.members.length === 0);
    expect(processesOf('late')).toEqual([]);
  }, 90_000);

  it('process → docker → process in stopped mode: every member is torn down by the provider that made it', async () => {
    await rbtkOk(fleet, ['pool', 'create', 'swap', '--type', 'hosted', '--provider', 'process', '--target', '2', '--mode', 'stopped']);
    const first = await settled(fleet, 'swap', '2 stopped processes', (s) => s.counts.stopped === 2 && s.members.length === 2);
    const frozen = processesOf('swap');
    expect(frozen.map((m) => procState(m.pid))).toEqual(['T', 'T']);

    await rbtkOk(fleet, ['pool', 'update', 'swap', '--provider', 'docker', '--image', TEST_IMAGE]);
    const twoStoppedCurrent = (s: HostedPoolStatus) => s.counts.stopped === 2 && s.members.length === 2 && s.members.every((m) => m.current);
    const second = await settled(fleet, 'swap', '2 stopped containers', twoStoppedCurrent, 60_000);
    expect(second.members.some((m) => first.members.some((f) => f.id === m.id))).toBe(false);
    // The SIGSTOPped processes were ended by the process provider, their folders removed.
    await waitFor('the stopped processes gone', () => processesOf('swap').length === 0, 15_000);
    for (const m of first.members) expect(existsSync(join(fleet.dataDir, 'hosted', 'swap', m.id))).toBe(false);
    expect((await containers('swap')).map((c) => c.State)).toEqual(['paused', 'paused']);

    await rbtkOk(fleet, ['pool', 'update', 'swap', '--provider', 'process']);
    const third = await settled(fleet, 'swap', '2 stopped processes again', twoStoppedCurrent, 60_000);
    // The paused containers were removed by the docker provider.
    await waitFor('the paused containers gone', async () => (await containers('swap')).length === 0, 15_000);
    expect(processesOf('swap').map((m) => m.memberId).sort()).toEqual(third.members.map((m) => m.id).sort());

    await rbtkOk(fleet, ['pool', 'update', 'swap', '--target', '0']);
    await settled(fleet, 'swap', 'empty', (s) => s.members.length === 0);
    await waitFor('no swap processes', () => processesOf('swap').length === 0, 15_000);
  }, 150_000);

  it('an image that does not exist: a bounded number of tries, not a loop', async () => {
    const from = fleet.coordinator.lines.length;
    const typo = ['--provider', 'docker', '--image', 'rbtk-test/no-such-image', '--target', '10'];
    await rbtkOk(fleet, ['pool', 'create', 'typo', '--type', 'hosted', ...typo]);
    await waitFor('a first failed create', () => createFailures(fleet, 'typo', from) > 0, 10_000);
    await sleep(4000);
    const failures = createFailures(fleet, 'typo', from);
    expect(failures).toBeLessThanOrEqual(12);
    const s = await status(fleet, 'typo');
    // Shown with its reason while the pool backs off.
    expect(s.counts.ready).toBe(0);
    expect(s.members.some((m) => m.state === 'errored' && /no such image/i.test(m.error ?? ''))).toBe(true);
    // Each failed create's runner was removed at once (it never connected): none waits OFFLINE in `rbtk runner list`.
    expect(s.members.filter((m) => m.state === 'errored').every((m) => m.runnerId === null)).toBe(true);
    const audit = await fleet.rbtkJson<AuditEntry[]>(['audit', '--resource-type', 'runner', '--limit', '1000']);
    const revoked = audit.filter((a) => a.action === 'runner.revoke' && a.details.pool === 'typo' && a.details.reason === 'hosted member create failed');
    expect(revoked.length).toBeGreaterThanOrEqual(Math.min(failures, 8));
    await rbtkOk(fleet, ['pool', 'update', 'typo', '--target', '0']);
    await settled(fleet, 'typo', 'empty', (s) => s.members.length === 0);
    expect(await containers('typo')).toEqual([]);
  }, 60_000);
});
