import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../src/executors/docker.js';
import { checkAirgappedNetwork, InternalNetworkCheck } from '../src/executors/docker-network.js';
import { ConfigError } from '../src/errors.js';
import { containersLabelled, ensureTestImage, removeContainersLabelled, requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { MemorySink } from './helpers/sink.js';

const hasDocker = await requireDocker('air-gapped docker network tests');

/*
 * An air-gapped runner puts job containers on `none` or an internal network
 * only: a real dockerd, one internal network and one that NATs out (the kind
 * `bridge` is), both made here and removed after.
 */
describe.skipIf(!hasDocker)("an air-gapped runner's job network (real Docker Engine)", () => {
  const docker = new Docker();
  const suffix = randomBytes(4).toString('hex');
  const internal = `rbtk-test-internal-${suffix}`;
  const open = `rbtk-test-open-${suffix}`;
  const runnerId = `agnet${suffix}`;
  let n = 0;
  const ref = () => ({ runnerId, jobId: `netjob${++n}`, attempt: 1 });
  const job = { type: 'docker' as const, image: TEST_IMAGE, command: ['sh', '-c', 'ls /sys/class/net'], env: {}, pull: 'never' as const };
  const notInternal = (name: string) =>
    `air-gapped runner: docker network ${name} is not internal (docker network create --internal); its containers could reach beyond this host`;

  beforeAll(async () => {
    await ensureTestImage(docker);
    await docker.createNetwork({ Name: internal, Internal: true });
    await docker.createNetwork({ Name: open });
  });
  afterAll(async () => {
    await removeContainersLabelled(`rbtk.runner=${runnerId}`, docker);
    for (const name of [internal, open]) await docker.getNetwork(name).remove().catch(() => undefined);
  });

  it("runs a job on the pool's internal network, and refuses one that is not internal before making a container", async () => {
    const executor = new DockerExecutor({ docker, airgapped: true, stopTimeoutS: 1 });
    const sink = new MemorySink();
    expect(await executor.start(ref(), job, sink, undefined, { network: internal }).wait()).toEqual({ outcome: 'succeeded', exitCode: 0 });
    expect(sink.text('stdout').split(/\s+/).filter(Boolean).sort()).toEqual(['eth0', 'lo']);

    const refused = new MemorySink();
    const r = ref();
    expect(await executor.start(r, job, refused, undefined, { network: open }).wait()).toEqual({
      outcome: 'failed',
      exitCode: null,
      message: notInternal(open),
    });
    expect(refused.startedCount).toBe(0);
    expect(await containersLabelled(`rbtk.job=${r.jobId}`, docker)).toEqual([]);
  });

  it('says before a job is accepted whether it will refuse it: an open or missing network for good, an internal one not at all', async () => {
    const executor = new DockerExecutor({ docker, airgapped: true });
    expect(await executor.refusal(job, { network: internal })).toBeUndefined();
    expect(await executor.refusal(job, { network: open })).toEqual({ reason: notInternal(open), retryable: false });
    const missing = `rbtk-test-missing-${suffix}`;
    expect(await new DockerExecutor({ docker, airgapped: true, network: missing }).refusal(job)).toEqual({
      reason: `air-gapped runner: docker network ${missing} does not exist (docker network create --internal ${missing})`,
      retryable: false,
    });
    expect(await new DockerExecutor({ docker }).refusal(job, { network: open })).toBeUndefined();
  });

  it("refuses runner.yaml's docker_network when it is not internal, and one that does not exist", async () => {
    const onOpen = await new DockerExecutor({ docker, airgapped: true, network: open }).start(ref(), job, new MemorySink()).wait();
    expect(onOpen.message).toBe(notInternal(open));
    const missing = `rbtk-test-missing-${suffix}`;
    const onMissing = await new DockerExecutor({ docker, airgapped: true, network: missing }).start(ref(), job, new MemorySink()).wait();
    expect(onMissing).toEqual({
      outcome: 'failed',
      exitCode: null,
      message: `air-gapped runner: docker network ${missing} does not exist (docker network create --internal ${missing})`,
    });
  });

  it('leaves a runner that is not air-gapped alone: it may use any network', async () => {
    const sink = new MemorySink();
    const result = await new DockerExecutor({ docker, stopTimeoutS: 1 }).start(ref(), job, sink, undefined, { network: open }).wait();
    expect(result).toEqual({ outcome: 'succeeded', exitCode: 0 });
    expect(sink.text('stdout')).toContain('eth0');
  });

  it('keeps what Docker said for a minute: a network created again under its name, not internal now, is seen after that', async () => {
    const name = `rbtk-test-recreated-${suffix}`;
    let now = 1_000_000;
    const check = new InternalNetworkCheck(docker, () => now);
    try {
      await docker.createNetwork({ Name: name, Internal: true });
      expect(await check.refusal(name)).toBeUndefined();
      await docker.getNetwork(name).remove();
      await docker.createNetwork({ Name: name });
      now += 30_000;
      expect(await check.refusal(name)).toBeUndefined();
      now += 31_000;
      expect(await check.refusal(name)).toEqual({ reason: notInternal(name), retryable: false });
      expect(await check.refusal('none')).toBeUndefined();
    } finally {
      await docker.getNetwork(name).remove().catch(() => undefined);
    }
  });

  it('at start: a docker_network that is not internal is a config error; none, internal, or not air-gapped pass', async () => {
    const config = (docker_network: string | undefined, airgapped = true) => ({ airgapped, executors: ['docker' as const], docker_network });
    const err = await checkAirgappedNetwork(config(open), '/etc/rbtk-runner/runner.yaml', docker).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toMatchObject({ key: 'docker_network', path: '/etc/rbtk-runner/runner.yaml', message: notInternal(open) });
    for (const ok of [config(internal), config('none'), config(undefined), config(open, false)]) {
      expect(await checkAirgappedNetwork(ok, 'runner.yaml', docker)).toBeUndefined();
    }
    // Not there (yet): a warning, and each job is checked instead.
    expect(await checkAirgappedNetwork(config(`rbtk-test-missing-${suffix}`), 'runner.yaml', docker)).toMatch(/does not exist .*; jobs are refused until it is$/);
  });
});
