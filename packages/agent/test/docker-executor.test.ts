import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer } from 'node:net';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../src/executors/docker.js';
import { cleanupLeftovers } from '../src/executors/docker-leftovers.js';
import { containersLabelled, ensureTestImage, removeContainersLabelled, requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { MemorySink } from './helpers/sink.js';

const hasDocker = await requireDocker('docker executor tests');

describe.skipIf(!hasDocker)('DockerExecutor against the real Docker Engine', () => {
  const docker = new Docker();
  // A runner id of its own per run, so parallel test files never see each other's containers.
  const runnerId = `test${randomBytes(6).toString('hex')}`;
  const label = `rbtk.runner=${runnerId}`;
  let n = 0;
  const ref = () => ({ runnerId, jobId: `job${++n}`, attempt: 1 });
  const sh = (script: string, extra: object = {}) => ({
    type: 'docker' as const,
    image: TEST_IMAGE,
    command: ['sh', '-c', script],
    env: {},
    pull: 'never' as const,
    ...extra,
  });

  beforeAll(async () => {
    await ensureTestImage(docker);
  });
  afterAll(async () => {
    await removeContainersLabelled(label, docker);
  });

  it('runs a container to success, stdout and stderr apart, in order, with the job env and no network', async () => {
    const sink = new MemorySink();
    const script = 'for i in 1 2 3; do echo out $i; echo err $i >&2; done; echo "$GREETING"; ls /sys/class/net';
    const execution = new DockerExecutor({ docker }).start(ref(), sh(script, { env: { GREETING: 'hello from the job' } }), sink);
    expect(await execution.wait()).toEqual({ outcome: 'succeeded', exitCode: 0 });
    expect(sink.startedCount).toBe(1);
    const out = sink.text('stdout');
    expect(sink.text('stderr')).toBe('err 1\nerr 2\nerr 3\n');
    // NetworkMode none: a loopback interface only.
    expect(out).toBe('out 1\nout 2\nout 3\nhello from the job\nlo\n');
  });

  it('reports a non-zero exit code as failed, and removes the container afterwards', async () => {
    const sink = new MemorySink();
    const r = ref();
    const result = await new DockerExecutor({ docker }).start(r, sh('echo on stdout; echo on stderr >&2; exit 7'), sink).wait();
    expect(result).toEqual({ outcome: 'failed', exitCode: 7, message: 'exited with code 7' });
    expect(sink.text('stdout')).toBe('on stdout\n');
    expect(sink.text('stderr')).toBe('on stderr\n');
    expect(await containersLabelled(`rbtk.job=${r.jobId}`, docker)).toEqual([]);
  });

  it('names and labels the container while it runs, and stops it (docker stop) on cancel', async () => {
    const sink = new MemorySink();
    const r = ref();
    const execution = new DockerExecutor({ docker }).start(r, sh('trap "echo got TERM; exit 143" TERM; echo ready; while true; do sleep 1; done'), sink);
    await sink.waitForText('ready');
    const [info] = await containersLabelled(`rbtk.job=${r.jobId}`, docker);
    expect(info?.Names).toEqual([`/rbtk-${r.jobId}-1`]);
    expect(info?.Labels).toMatchObject({ 'rbtk.runner': runnerId, 'rbtk.job': r.jobId, 'rbtk.attempt': '1' });
    expect(info?.HostConfig.NetworkMode).toBe('none');
    execution.stop({ outcome: 'cancelled', message: 'cancelled' });
    expect(await execution.wait()).toEqual({ outcome: 'cancelled', exitCode: 143, message: 'cancelled' });
    await sink.waitForText('got TERM');
    expect(await containersLabelled(`rbtk.job=${r.jobId}`, docker)).toEqual([]);
  });

  it('kills a container that ignores SIGTERM after the stop timeout, reported as timed_out', async () => {
    const sink = new MemorySink();
    const r = ref();
    const execution = new DockerExecutor({ docker, stopTimeoutS: 1 }).start(r, sh('trap "" TERM; echo ready; while true; do sleep 1; done'), sink);
    await sink.waitForText('ready');
    execution.stop({ outcome: 'timed_out', message: 'timed out after 1s' });
    expect(await execution.wait()).toEqual({ outcome: 'timed_out', exitCode: 137, message: 'timed out after 1s' });
    expect(await containersLabelled(`rbtk.job=${r.jobId}`, docker)).toEqual([]);
  });

  it('fails at once when the image is missing and the pull policy is never', async () => {
    const sink = new MemorySink();
    const result = await new DockerExecutor({ docker }).start(ref(), sh('true', { image: 'rbtk-test/absent:1', pull: 'never' }), sink).wait();
    expect(result).toEqual({ outcome: 'failed', exitCode: null, message: 'image rbtk-test/absent:1 is not on this host (pull policy never)' });
    expect(sink.startedCount).toBe(0);
  });

  it('fails with Docker\'s message when the pull fails (no registry reachable)', async () => {
    const result = await new DockerExecutor({ docker })
      .start(ref(), sh('true', { image: 'rbtk-test/absent:1', pull: 'if-not-present' }), new MemorySink())
      .wait();
    expect(result.outcome).toBe('failed');
    expect(result.exitCode).toBeNull();
    expect(result.message).toMatch(/^could not pull image rbtk-test\/absent:1: \S/);
  });

  it('stops at once when cancelled during a pull from a registry that never answers', async () => {
    // A "registry" that takes the connection and says nothing: Docker's pull waits on it.
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      const execution = new DockerExecutor({ docker }).start(ref(), sh('true', { image: `127.0.0.1:${port}/team/sim:1`, pull: 'always' }), new MemorySink());
      await new Promise((r) => setTimeout(r, 1_000));
      const stoppedAt = performance.now();
      execution.stop({ outcome: 'cancelled', message: 'cancelled' });
      expect(await execution.wait()).toEqual({ outcome: 'cancelled', exitCode: null, message: 'cancelled' });
      expect(performance.now() - stoppedAt).toBeLessThan(2_000);
    } finally {
      silent.close();
    }
  });

  it('removes the containers a previous run left, by label, and says which attempts they were', async () => {
    const name = `rbtk-leftover${n}-3`;
    await docker.createContainer({
      name,
      Image: TEST_IMAGE,
      Cmd: ['sleep', '300'],
      Labels: { 'rbtk.runner': runnerId, 'rbtk.job': `leftover${n}`, 'rbtk.attempt': '3' },
      HostConfig: { NetworkMode: 'none' },
    }).then((c) => c.start());
    const removed = await cleanupLeftovers(docker, runnerId);
    expect(removed).toEqual([expect.objectContaining({ name, jobId: `leftover${n}`, attempt: 3 })]);
    expect(await containersLabelled(label, docker)).toEqual([]);
  });
});
