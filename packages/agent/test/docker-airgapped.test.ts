import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../src/executors/docker.js';
import { createExecutors } from '../src/executors/index.js';
import { containersLabelled, ensureTestImage, removeContainersLabelled, requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { waitUntil } from './helpers/fixtures.js';
import { MemorySink } from './helpers/sink.js';

const hasDocker = await requireDocker('air-gapped docker tests');

interface ImageEvent {
  Action: string;
  Actor?: { ID?: string };
}

describe.skipIf(!hasDocker)('an air-gapped runner\'s docker executor (real Docker Engine)', () => {
  const docker = new Docker();
  const runnerId = `airgap${randomBytes(6).toString('hex')}`;
  let n = 0;
  const ref = () => ({ runnerId, jobId: `agjob${++n}`, attempt: 1 });
  const job = (image: string, pull: 'if-not-present' | 'always' | 'never', script = 'true') => ({
    type: 'docker' as const,
    image,
    command: ['sh', '-c', script],
    env: {},
    pull,
  });
  const airgapped = (extra: { registry?: string; network?: string } = {}) =>
    new DockerExecutor({ docker, airgapped: true, stopTimeoutS: 1, ...extra });

  beforeAll(async () => {
    await ensureTestImage(docker);
  });
  afterAll(async () => {
    await removeContainersLabelled(`rbtk.runner=${runnerId}`, docker);
  });

  it('never pulls: a missing image fails at once with the load hint, and `always` is refused; the engine sees no pull', async () => {
    const events = (await docker.getEvents({ filters: { type: ['image'] } })) as NodeJS.ReadableStream & { destroy(): void };
    const seen: ImageEvent[] = [];
    events.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) seen.push(JSON.parse(line) as ImageEvent);
    });
    try {
      const missing = `rbtk-test/absent-airgapped-${n}:1`;
      for (const pull of ['if-not-present', 'never'] as const) {
        const sink = new MemorySink();
        const result = await airgapped().start(ref(), job(missing, pull), sink).wait();
        expect(result).toEqual({
          outcome: 'failed',
          exitCode: null,
          message: `image ${missing} is not on this air-gapped host; load it with \`docker load\``,
        });
        expect(sink.startedCount).toBe(0);
      }
      // `always` is refused even for an image that is on the host: it would mean a pull.
      const always = await airgapped().start(ref(), job(TEST_IMAGE, 'always'), new MemorySink()).wait();
      expect(always.outcome).toBe('failed');
      expect(always.exitCode).toBeNull();
      expect(always.message).toMatch(/^pull policy always is refused on this air-gapped host/);

      // A tag is an image event too: once it arrives, the stream has shown everything before it.
      const marker = `rbtk-test/airgap-marker-${runnerId}`;
      await docker.getImage(TEST_IMAGE).tag({ repo: marker, tag: 'latest' });
      await waitUntil(() => seen.some((e) => e.Action === 'tag'));
      await docker.getImage(`${marker}:latest`).remove().catch(() => undefined);
      expect(seen.filter((e) => e.Action === 'pull')).toEqual([]);
    } finally {
      events.destroy();
    }
  });

  it('runs an image that is on the host, with NetworkMode none', async () => {
    const sink = new MemorySink();
    const r = ref();
    const execution = airgapped().start(r, job(TEST_IMAGE, 'if-not-present', 'echo ready; ls /sys/class/net; sleep 30'), sink);
    await sink.waitForText('ready');
    const [c] = await containersLabelled(`rbtk.job=${r.jobId}`, docker);
    expect((await docker.getContainer(c!.Id).inspect()).HostConfig.NetworkMode).toBe('none');
    execution.stop({ outcome: 'cancelled', message: 'cancelled' });
    await execution.wait();
    expect(sink.text('stdout')).toBe('ready\nlo\n');
  });

  it('createExecutors: runner.yaml airgapped, registry and docker_network reach the executor', async () => {
    const { docker: executor } = await createExecutors({ executors: ['docker'], airgapped: true, registry: '127.0.0.1:1', docker_network: 'none' });
    // An image named under the on-prem registry may be pulled: the pull is tried (and fails: nothing listens there).
    const result = await executor!.start(ref(), job('127.0.0.1:1/team/sim:1', 'if-not-present'), new MemorySink()).wait();
    expect(result.outcome).toBe('failed');
    expect(result.message).toMatch(/^could not pull image 127\.0\.0\.1:1\/team\/sim:1: /);
    const other = await executor!.start(ref(), job('rbtk-test/elsewhere:1', 'if-not-present'), new MemorySink()).wait();
    expect(other.message).toBe('image rbtk-test/elsewhere:1 is not on this air-gapped host; load it with `docker load`');
  });
});
