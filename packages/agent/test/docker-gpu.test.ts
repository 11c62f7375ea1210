import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../src/executors/docker.js';
import { checkDockerGpuSupport, NO_TOOLKIT_REASON } from '../src/inventory/gpu-docker.js';
import { containersLabelled, ensureTestImage, removeContainersLabelled, requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { MemorySink } from './helpers/sink.js';

const hasDocker = await requireDocker('docker GPU tests');

/** The two GPUs of the 2-GPU capture. */
const UUIDS = ['GPU-57567e11-0be2-381b-5132-2ad95c262e58', 'GPU-ef1d0068-5bfd-f1e4-7e79-ff35d71d44b8'];

/**
 * Ground truth, asked of the Engine directly: does a container with an nvidia
 * device request start? (Yes where dockerd has nvidia-container-runtime-hook,
 * real or the stand-in DESIGN.md describes, on its PATH.)
 */
async function engineHasNvidiaDriver(docker: Docker): Promise<boolean> {
  const c = await docker.createContainer({
    Image: TEST_IMAGE,
    Cmd: ['true'],
    Labels: { 'rbtk.probe': 'test' },
    HostConfig: { NetworkMode: 'none', DeviceRequests: [{ Driver: 'nvidia', DeviceIDs: [UUIDS[0]!], Capabilities: [['gpu']] }] },
  });
  try {
    await c.start();
    return true;
  } catch (err) {
    if (/could not select device driver/.test(String((err as Error).message))) return false;
    throw err;
  } finally {
    await c.remove({ force: true });
  }
}

describe.skipIf(!hasDocker)('GPU jobs in the docker executor (real Docker Engine, no real GPU)', () => {
  const docker = new Docker();
  const runnerId = `gpu${randomBytes(6).toString('hex')}`;
  let n = 0;
  const ref = () => ({ runnerId, jobId: `gpujob${++n}`, attempt: 1 });
  let hasDriver = false;

  beforeAll(async () => {
    await ensureTestImage(docker);
    hasDriver = await engineHasNvidiaDriver(docker);
    console.info(`docker GPU tests: the engine ${hasDriver ? 'has' : 'has no'} nvidia device driver`);
  });
  afterAll(async () => {
    await removeContainersLabelled(`rbtk.runner=${runnerId}`, docker);
  });

  it('asks for exactly the attempt\'s GPUs by uuid through DeviceRequests (Driver nvidia), never the nvidia runtime', async () => {
    const sink = new MemorySink();
    const r = ref();
    const spec = { type: 'docker' as const, image: TEST_IMAGE, command: ['sh', '-c', 'echo "visible=$NVIDIA_VISIBLE_DEVICES"; echo ready; sleep 30'], env: {}, pull: 'never' as const };
    // The Engine reads the request at create; inspect the container as soon as it exists.
    const events = (await docker.getEvents({ filters: { type: ['container'], event: ['create'], label: [`rbtk.job=${r.jobId}`] } })) as NodeJS.ReadableStream & { destroy(): void };
    const inspected = new Promise<Docker.ContainerInspectInfo>((resolve, reject) => {
      events.once('data', (chunk: Buffer) => {
        const id = (JSON.parse(chunk.toString()) as { id: string }).id;
        docker.getContainer(id).inspect().then(resolve, reject);
      });
    });
    const execution = new DockerExecutor({ docker, stopTimeoutS: 1 }).start(r, spec, sink, undefined, { gpuIds: UUIDS });
    const info = await inspected.finally(() => events.destroy());
    const requests = info.HostConfig.DeviceRequests ?? [];
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ Driver: 'nvidia', Count: 0, DeviceIDs: UUIDS, Capabilities: [['gpu']] });
    expect(info.HostConfig.Runtime).not.toBe('nvidia');

    if (hasDriver) {
      // The stand-in hook lets it run: the Engine's nvidia driver sets exactly the requested uuids.
      await sink.waitForText('ready');
      expect(sink.text('stdout')).toContain(`visible=${UUIDS.join(',')}\n`);
      execution.stop({ outcome: 'cancelled', message: 'cancelled' });
      expect((await execution.wait()).outcome).toBe('cancelled');
    } else {
      const result = await execution.wait();
      expect(result.outcome).toBe('failed');
      expect(result.message).toMatch(/could not select device driver "nvidia"/);
    }
    expect(await containersLabelled(`rbtk.job=${r.jobId}`, docker)).toEqual([]);
  });

  it('a job without GPUs gets no device request', async () => {
    const sink = new MemorySink();
    const r = ref();
    const execution = new DockerExecutor({ docker, stopTimeoutS: 1 }).start(r, { type: 'docker', image: TEST_IMAGE, command: ['sh', '-c', 'echo ready; sleep 30'], env: {}, pull: 'never' }, sink);
    await sink.waitForText('ready');
    const [c] = await containersLabelled(`rbtk.job=${r.jobId}`, docker);
    const info = await docker.getContainer(c!.Id).inspect();
    expect(info.HostConfig.DeviceRequests ?? []).toEqual([]);
    execution.stop({ outcome: 'cancelled', message: 'cancelled' });
    await execution.wait();
  });

  it('says whether Docker can hand GPUs to containers, as the Engine itself answers', async () => {
    const support = await checkDockerGpuSupport(docker, UUIDS, { probeImage: TEST_IMAGE });
    expect(support).toEqual(hasDriver ? { usable: true } : { usable: false, reason: NO_TOOLKIT_REASON });
    // The probe leaves nothing behind.
    expect(await containersLabelled('rbtk.probe=gpu', docker)).toEqual([]);
  });
});
