import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../src/executors/docker.js';
import { containersLabelled, removeContainersLabelled, requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { GROW_TO_64M, MiB, requireMemoryLimits } from './helpers/docker-memory.js';
import { MemorySink } from './helpers/sink.js';

const hasDocker = await requireDocker('docker memory limit tests');
const enforced = hasDocker && (await requireMemoryLimits('docker OOM tests'));

describe.skipIf(!hasDocker)('the docker executor\'s memory limit (real Docker Engine)', () => {
  const docker = new Docker();
  const runnerId = `mem${randomBytes(6).toString('hex')}`;
  let n = 0;
  const ref = () => ({ runnerId, jobId: `memjob${++n}`, attempt: 1 });
  const sh = (script: string, memory?: string | number) => ({
    type: 'docker' as const,
    image: TEST_IMAGE,
    command: ['sh', '-c', script],
    env: {},
    pull: 'never' as const,
    ...(memory !== undefined ? { memory } : {}),
  });

  afterAll(async () => {
    await removeContainersLabelled(`rbtk.runner=${runnerId}`, docker);
  });

  it('gives the container HostConfig.Memory and an equal MemorySwap (no swap beyond the limit)', async () => {
    const sink = new MemorySink();
    const r = ref();
    const execution = new DockerExecutor({ docker, stopTimeoutS: 1 }).start(r, sh('echo ready; sleep 300', '12m'), sink);
    await sink.waitForText('ready');
    const [info] = await containersLabelled(`rbtk.job=${r.jobId}`, docker);
    const { HostConfig } = await docker.getContainer(info!.Id).inspect();
    expect([HostConfig.Memory, HostConfig.MemorySwap]).toEqual([12 * MiB, 12 * MiB]);
    execution.stop({ outcome: 'cancelled', message: 'cancelled' });
    expect((await execution.wait()).outcome).toBe('cancelled');
  });

  it('sets no limit when the spec has none', async () => {
    const sink = new MemorySink();
    const r = ref();
    const execution = new DockerExecutor({ docker, stopTimeoutS: 1 }).start(r, sh('echo ready; sleep 300'), sink);
    await sink.waitForText('ready');
    const [info] = await containersLabelled(`rbtk.job=${r.jobId}`, docker);
    expect((await docker.getContainer(info!.Id).inspect()).HostConfig.Memory).toBe(0);
    execution.stop({ outcome: 'cancelled', message: 'cancelled' });
    await execution.wait();
  });

  it.skipIf(!enforced)('reports a container the OOM killer ended as out of memory, with its limit, and removes it', async () => {
    const sink = new MemorySink();
    const r = ref();
    const result = await new DockerExecutor({ docker }).start(r, sh(`echo started; ${GROW_TO_64M}`, '8m'), sink).wait();
    expect(result).toEqual({
      outcome: 'failed',
      exitCode: 137,
      message: 'out of memory: the container was killed by the kernel OOM killer (limit 8 MiB)',
      oomKilled: true,
    });
    expect(sink.text('stdout')).toBe('started\n');
    expect(await containersLabelled(`rbtk.job=${r.jobId}`, docker)).toEqual([]);
  });

  it.skipIf(!enforced)('keeps a job within its limit a success', async () => {
    const fits = await new DockerExecutor({ docker }).start(ref(), sh(GROW_TO_64M, '256m'), new MemorySink()).wait();
    expect(fits).toEqual({ outcome: 'succeeded', exitCode: 0 });
  });

  it('tells a SIGKILL that Docker reports as no OOM kill from one without a limit', async () => {
    // Not PID 1 (which ignores a SIGKILL from inside): a child shell kills itself, and sh exits with its 137.
    const suicide = 'sh -c "kill -9 \\$\\$"; exit $?';
    const limited = await new DockerExecutor({ docker }).start(ref(), sh(suicide, '256m'), new MemorySink()).wait();
    expect(limited).toEqual({
      outcome: 'failed',
      exitCode: 137,
      message: 'exited with code 137 (SIGKILL) under its 256 MiB memory limit: possibly the kernel OOM killer, though Docker reported no OOM kill',
    });
    const unlimited = await new DockerExecutor({ docker }).start(ref(), sh(suicide), new MemorySink()).wait();
    expect(unlimited).toEqual({ outcome: 'failed', exitCode: 137, message: 'exited with code 137' });
  });
});
