import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containersLabelled, ensureTestImage, removeContainersLabelled, requireDocker, TEST_IMAGE } from '../packages/agent/test/helpers/docker.js';
import { Fleet } from './helpers/fleet.js';
import { Hosted, hostedPoolScenarios, type ProviderAdapter } from './helpers/hosted-scenarios.js';
import { Jobs, shell } from './helpers/jobs.js';

/*
 * Hosted pools with the docker provider against the real dockerd: members are
 * containers of the busybox test image running this host's node and
 * rbtk-runner (--hosted-docker-agent host: bind-mounted read-only, host
 * network), labelled with their member, pool and coordinator. The scenarios
 * shared with the process provider run first (helpers/hosted-scenarios.ts),
 * then what is the docker provider's own: containers, pause, adoption of paused ones.
 */

const haveDocker = await requireDocker('hosted docker pools');

const MEMBER = 'rbtk.hosted.member';
const POOL = 'rbtk.hosted.pool';

/**
 * Members are containers labelled with this coordinator's member folder (its
 * owner label), any state: an exited one left behind is a leak too. A job sees
 * its member's folder at /member, DATA_DIR/hosted-docker/POOL/MEMBER here.
 */
function dockerAdapter(docker: Docker, owner: string): ProviderAdapter {
  return {
    createFlags: ['--provider', 'docker', '--image', TEST_IMAGE],
    live: async (pool) =>
      (await containersLabelled(`rbtk.hosted.owner=${owner}`, docker))
        .filter((c) => pool === undefined || c.Labels[POOL] === pool)
        .map((c) => c.Labels[MEMBER] ?? ''),
    gate: (pool, name) => ({ inJob: `/member/${name}`, onHost: (memberId) => join(owner, pool, memberId, name) }),
    readyTimeoutMs: 60_000,
  };
}

describe.runIf(haveDocker)('hosted pools (docker provider)', () => {
  const docker = new Docker();
  let fleet: Fleet;
  let jobs: Jobs;
  let owner: string;
  let hosted: Hosted;

  const status = (pool: string) => hosted.status(pool);
  const settled: Hosted['settled'] = (...args) => hosted.settled(...args);
  // The pool's containers only: the shared scenarios' pools are still there.
  const owned = async () => (await containersLabelled(`rbtk.hosted.owner=${owner}`, docker)).filter((c) => c.Labels[POOL] === 'dock');

  beforeAll(async () => {
    await ensureTestImage(docker);
    fleet = await Fleet.create();
    owner = join(fleet.dataDir, 'hosted-docker');
    process.env.RBTK_HOSTED_DOCKER_AGENT = 'host';
    await fleet.startCoordinator({ offlineAfter: '3s', heartbeatInterval: '200ms', reconcileInterval: '1s' });
    jobs = new Jobs(fleet);
    hosted = new Hosted(fleet, jobs, dockerAdapter(docker, owner));
  });

  afterAll(async () => {
    delete process.env.RBTK_HOSTED_DOCKER_AGENT;
    // The coordinator first: running, its reconcile loop would replace the members removed under it.
    const leftover = fleet ? await fleet.close() : [];
    if (owner) await removeContainersLabelled(`rbtk.hosted.owner=${owner}`, docker);
    expect(leftover).toEqual([]);
  });

  hostedPoolScenarios(() => hosted);

  // Docker only from here.
  it('fills to its target with labelled containers, and a job runs inside one', async () => {
    await hosted.create('dock', '--target', '2', '--max', '3');
    const filled = await settled('dock', '2 ready', (s) => s.counts.ready === 2 && s.members.length === 2);
    const containers = await owned();
    expect(containers.map((c) => c.Labels[MEMBER]).sort()).toEqual(filled.members.map((m) => m.id).sort());
    expect(containers.every((c) => c.State === 'running' && c.Labels[POOL] === 'dock')).toBe(true);

    // /member exists only inside a member container: the job ran there.
    const j = await jobs.submit(shell('test -f /member/runner.yaml && echo inside-member', { pool: 'dock' }));
    const done = await jobs.waitForState(j.id, ['succeeded', 'failed'], 30_000);
    expect(done.state).toBe('succeeded');
    expect(await jobs.log(j.id)).toContain('inside-member');
    // return terminate: that member's container is gone, a fresh one replaced it.
    const ranOn = filled.members.find((m) => m.runnerId === done.runnerId)!;
    await settled('dock', 'replaced', (s) => s.counts.ready === 2 && !s.members.some((m) => m.id === ranOn.id));
    const after = await owned();
    expect(after).toHaveLength(2);
    expect(after.some((c) => c.Labels[MEMBER] === ranOn.id)).toBe(false);
  });

  it('stopped mode pauses members; a claim unpauses one and the job lands on it', async () => {
    const res = await fleet.rbtk(['pool', 'update', 'dock', '--mode', 'stopped']);
    expect(res.code, res.stderr).toBe(0);
    const stopped = await settled('dock', '2 stopped', (s) => s.counts.stopped === 2 && s.members.length === 2);
    for (const c of await owned()) expect(c.State).toBe('paused');
    // Past --offline-after: paused members are not replaced.
    await new Promise((r) => setTimeout(r, 4000));
    expect((await status('dock')).members.map((m) => `${m.id}:${m.state}`).sort()).toEqual(stopped.members.map((m) => `${m.id}:stopped`).sort());

    const j = await jobs.submit(shell('echo woke', { pool: 'dock' }));
    const done = await jobs.waitForState(j.id, ['succeeded', 'failed'], 30_000);
    expect(`${done.state} ${done.reason ?? ''} ${await jobs.log(j.id)}`).toBe('succeeded  woke\n');
    expect(stopped.members.some((m) => m.runnerId === done.runnerId)).toBe(true);
    await settled('dock', 'back to 2 stopped', (s) => s.counts.stopped === 2 && s.members.length === 2);
  });

  it('a coordinator SIGKILLed and restarted adopts its containers; target 0 leaves none', async () => {
    const before = (await status('dock')).members.map((m) => m.id).sort();
    await fleet.restartCoordinator('SIGKILL');
    const res = await fleet.rbtk(['pool', 'update', 'dock', '--mode', 'hot']);
    expect(res.code, res.stderr).toBe(0);
    // The stopped members are started (hot now) and reconnect to the new coordinator: the same members.
    const adopted = await settled('dock', '2 ready again', (s) => s.counts.ready === 2 && s.members.length === 2);
    expect(adopted.members.map((m) => m.id).sort()).toEqual(before);
    expect((await owned()).map((c) => c.Labels[MEMBER]).sort()).toEqual(before);

    const zero = await fleet.rbtk(['pool', 'update', 'dock', '--target', '0']);
    expect(zero.code, zero.stderr).toBe(0);
    await settled('dock', 'empty', (s) => s.members.length === 0);
    expect(await owned()).toEqual([]);
    const deleted = await fleet.rbtk(['pool', 'delete', 'dock']);
    expect(deleted.code, deleted.stderr).toBe(0);
  });
});
