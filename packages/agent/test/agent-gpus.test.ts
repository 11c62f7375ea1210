import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runAgent } from '../src/agent.js';
import { controlSocketPath } from '../src/config/paths.js';
import { writeConfig } from '../src/config/write.js';
import { fetchDaemonStatus } from '../src/control/client.js';
import type { DaemonResult } from '../src/daemon.js';
import { CoordinatorPeer } from './helpers/coordinator-peer.js';
import { ensureTestImage, removeContainersLabelled, requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { HOST, memoryLogger, runnerConfig, tempDir } from './helpers/fixtures.js';
import { noNvidiaSmi, standInNvidiaSmi, TWO_GPUS, type StandIn } from './helpers/nvidia-smi.js';

const hasDocker = await requireDocker('agent GPU tests');

describe.skipIf(!hasDocker)('the runner daemon on a GPU host (stand-in nvidia-smi, real Docker Engine)', () => {
  let cleanup: (() => Promise<void>) | undefined;
  let peer: CoordinatorPeer | undefined;
  let smi: StandIn | undefined;
  let controller: AbortController;
  let running: Promise<DaemonResult> | undefined;
  const runnerId = `agentgpu${randomBytes(5).toString('hex')}`;

  beforeAll(async () => {
    await ensureTestImage();
  });
  afterEach(async () => {
    controller?.abort();
    await running?.catch(() => undefined);
    await peer?.close();
    await smi?.cleanup();
    await removeContainersLabelled(`rbtk.runner=${runnerId}`);
    await cleanup?.();
  });

  async function start(standIn: StandIn) {
    smi = standIn;
    const tmp = await tempDir();
    cleanup = tmp.cleanup;
    peer = await CoordinatorPeer.start({ heartbeatIntervalMs: 50 });
    const config = runnerConfig(peer.url, { runner_id: runnerId, test_image: TEST_IMAGE, shutdown_timeout: '2s' });
    const configPath = join(tmp.dir, 'runner.yaml');
    await writeConfig(configPath, config);
    controller = new AbortController();
    const log = memoryLogger();
    running = runAgent(
      { config, configPath, logger: log.logger, env: {}, hostFacts: async () => HOST, gpuOptions: { env: smi.env }, executorOptions: { dockerStopTimeoutS: 1 } },
      controller.signal,
    );
    await peer.waitFor('hello', () => peer!.messages('hello')[0], 10_000);
    return { socket: controlSocketPath(join(tmp.dir, 'state')), log };
  }

  it('sends the GPU inventory in hello, shows it in the status, and runs a 2-GPU job with exactly its uuids', async () => {
    const { socket } = await start(await standInNvidiaSmi({ capture: TWO_GPUS }));
    const gpus = peer!.messages('hello')[0]!.capabilities.gpus!;
    expect(gpus.gpus.map((g) => [g.index, g.uuid, g.name, g.memoryMiB])).toEqual([
      [0, 'GPU-57567e11-0be2-381b-5132-2ad95c262e58', 'GeForce RTX 2080 Ti', 10989],
      [1, 'GPU-ef1d0068-5bfd-f1e4-7e79-ff35d71d44b8', 'GeForce RTX 2080 Ti', 10989],
    ]);
    expect(gpus).toMatchObject({ driverVersion: '410.73', cudaVersion: '10.0' });
    const status = await fetchDaemonStatus(socket);
    expect(status.running && status.status.gpus).toEqual(gpus);
    if (!gpus.usable) {
      // This engine has no nvidia device driver: the GPUs are present but not offered.
      expect(gpus.reason).toMatch(/^Docker cannot hand GPUs to containers/);
      return;
    }
    expect(status.running && status.status.freeGpus).toHaveLength(2);
    peer!.assign('gpu-job', {
      pool: 'ci',
      requires: { labels: {}, gpus: 2 },
      executor: { type: 'docker', image: TEST_IMAGE, pull: 'never', command: ['sh', '-c', 'echo "visible=$NVIDIA_VISIBLE_DEVICES"'] },
    });
    const result = await peer!.waitForResult('gpu-job');
    expect(result.outcome).toBe('succeeded');
    expect(peer!.logText('gpu-job')).toBe(`visible=${gpus.gpus.map((g) => g.uuid).join(',')}\n`);
    // Released once the attempt ended.
    let free: string[] = [];
    for (let i = 0; i < 100 && free.length < 2; i++) {
      const now = await fetchDaemonStatus(socket);
      free = now.running ? now.status.freeGpus : [];
      if (free.length < 2) await new Promise((r) => setTimeout(r, 20));
    }
    expect(free).toHaveLength(2);
  });

  it('a host without nvidia-smi sends an empty, unusable inventory', async () => {
    await start(await noNvidiaSmi());
    expect(peer!.messages('hello')[0]!.capabilities.gpus).toEqual({ gpus: [], driverVersion: null, cudaVersion: null, usable: false });
  });
});
