import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { ensureTestImage, requireDocker, TEST_IMAGE } from '../packages/agent/test/helpers/docker.js';
import { Fleet } from './helpers/fleet.js';
import { Jobs } from './helpers/jobs.js';
import { waitFor } from './helpers/processes.js';

const hasDocker = await requireDocker('air-gapped network e2e tests');

/*
 * The air gap holds whatever network the pool or runner.yaml names: an
 * air-gapped runner runs jobs on an internal network, refuses a network that
 * NATs out (as `bridge` does), and will not start with one in runner.yaml.
 * Both networks are made here, on the real dockerd, and removed after.
 */
describe.skipIf(!hasDocker)('air-gapped runners and the docker network they are given', () => {
  const docker = new Docker();
  const suffix = randomBytes(4).toString('hex');
  const internal = `rbtk-e2e-internal-${suffix}`;
  const open = `rbtk-e2e-open-${suffix}`;
  let fleet: Fleet;
  let jobs: Jobs;
  const notInternal = (name: string) =>
    `air-gapped runner: docker network ${name} is not internal (docker network create --internal); its containers could reach beyond this host`;
  const dockerJob = (pool: string) => ({
    pool,
    requires: { airgapped: true },
    executor: { type: 'docker' as const, image: TEST_IMAGE, pull: 'never' as const, command: ['sh', '-c', 'ls /sys/class/net'] },
  });

  beforeAll(async () => {
    await ensureTestImage();
    await docker.createNetwork({ Name: internal, Internal: true });
    await docker.createNetwork({ Name: open });
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '5s', heartbeatInterval: '200ms' });
    jobs = new Jobs(fleet);
    for (const [pool, network] of [['sealed', internal], ['leaky', open]] as const) {
      expect((await fleet.rbtk(['pool', 'create', pool, '--airgapped', '--docker-network', network])).code).toBe(0);
      await fleet.registerRunner(pool, `${pool}-host`, '--airgapped', '--executor', 'docker');
      fleet.startRunner(`${pool}-host`);
    }
    for (const name of ['sealed-host', 'leaky-host']) {
      await waitFor(`${name} ONLINE`, async () => {
        const list = await fleet.rbtkJson<{ name: string; status: string }[]>(['runner', 'list']);
        return list.find((r) => r.name === name)?.status === 'ONLINE';
      });
    }
  });

  afterAll(async () => {
    if (fleet) expect(await fleet.close()).toEqual([]);
    for (const name of [internal, open]) await docker.getNetwork(name).remove().catch(() => undefined);
  });

  it("runs a job on the pool's internal network, and rejects (never fails) the job of a pool whose network is not internal", async () => {
    const sealed = await jobs.submit(dockerJob('sealed'));
    expect((await jobs.waitForState(sealed.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    expect((await jobs.log(sealed.id)).split(/\s+/).filter(Boolean).sort()).toEqual(['eth0', 'lo']);

    // Rejected before it is accepted, not retryable: the job goes back to the queue without spending
    // a retry, and this runner is not offered it again (the pool has no other runner: it waits).
    const leaky = await jobs.submit(dockerJob('leaky'));
    const rejected = `rejected: ${notInternal(open)}`;
    await waitFor('leaky job rejected', async () => (await jobs.get(leaky.id)).reason === rejected);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await jobs.get(leaky.id)).toMatchObject({ state: 'queued', runnerId: null, reason: rejected });
    expect(await jobs.log(leaky.id)).toBe('');
    expect((await jobs.cancel(leaky.id)).state).toBe('cancelled');
  });

  it('will not start with a docker_network in runner.yaml that is not internal: exit 78, naming the key and why', async () => {
    await fleet.registerRunner('sealed', 'misconfigured', '--airgapped', '--executor', 'docker');
    const path = fleet.configPath('misconfigured');
    await writeFile(path, stringify({ ...parse(await readFile(path, 'utf8')), docker_network: open }), { mode: 0o600 });
    const res = await fleet.runner(['run', '--config', path]);
    expect(res.code).toBe(78);
    const fatal = `${res.stdout}${res.stderr}`.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.level === 60);
    expect(fatal).toMatchObject({ key: 'docker_network', path, msg: `invalid config: ${notInternal(open)}` });
  });
});
