import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runner } from '@rbtk/protocol';
import { ensureTestImage, requireDocker, TEST_IMAGE } from '../packages/agent/test/helpers/docker.js';
import { EIGHT_GPUS, standInNvidiaSmi, TWO_GPUS, type StandIn } from '../packages/agent/test/helpers/nvidia-smi.js';
import { Fleet } from './helpers/fleet.js';
import { Jobs } from './helpers/jobs.js';
import { waitFor } from './helpers/processes.js';

const hasDocker = await requireDocker('GPU job e2e tests');

/*
 * GPU jobs without a GPU, for real: dockerd runs with a stand-in
 * nvidia-container-runtime-hook on its PATH (.ci/docker.sh), so the engine's
 * own "nvidia" device driver serves the device requests; each runner sees a
 * stand-in nvidia-smi that prints a real capture (8× V100S, 2× RTX 2080 Ti).
 */
describe.skipIf(!hasDocker)('GPU jobs through real runners and dockerd', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  const standIns: StandIn[] = [];
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    await ensureTestImage();
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '3s', heartbeatInterval: '200ms' });
    jobs = new Jobs(fleet);
    expect((await fleet.rbtk(['pool', 'create', 'gpu'])).code).toBe(0);
    for (const [name, capture] of [['v100x8', EIGHT_GPUS], ['rtx2080x2', TWO_GPUS]] as const) {
      const standIn = await standInNvidiaSmi({ capture });
      standIns.push(standIn);
      ids[name] = await fleet.registerRunner('gpu', name, '--executor', 'docker', '--max-jobs', '8');
      fleet.startRunner(name, { PATH: `${standIn.dir}:${process.env.PATH}` });
    }
    for (const id of Object.values(ids)) {
      await waitFor('ONLINE', async () => (await fleet.runnerStatus(id)) === 'ONLINE');
    }
  });

  afterAll(async () => {
    expect(await fleet.close()).toEqual([]);
    for (const s of standIns) await s.cleanup();
  });

  it('shows each runner\'s GPUs and that Docker can serve them', async () => {
    const big = await fleet.rbtkJson<Runner>(['runner', 'show', ids.v100x8!]);
    expect(big.gpus).toHaveLength(8);
    expect(big.gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(big.gpus[0]).toMatchObject({ name: 'Tesla V100S-PCIE-32GB', memoryMiB: 32510 });
    expect(big.gpuUsable).toBe(true);
    const small = await fleet.rbtkJson<Runner>(['runner', 'show', ids.rtx2080x2!]);
    expect(small.gpus.map((g) => g.name)).toEqual(['GeForce RTX 2080 Ti', 'GeForce RTX 2080 Ti']);
  });

  it('gives four concurrent 2-GPU jobs disjoint GPUs on the 8-GPU host; a fifth waits', async () => {
    const big = await fleet.rbtkJson<Runner>(['runner', 'show', ids.v100x8!]);
    const spec = (seconds: number) => ({
      pool: 'gpu',
      requires: { gpus: 2, gpuModel: 'V100S' },
      executor: { type: 'docker' as const, image: TEST_IMAGE, pull: 'never' as const, command: ['sh', '-c', `echo $NVIDIA_VISIBLE_DEVICES; sleep ${seconds}`] },
    });
    const four = [];
    for (let i = 0; i < 4; i++) four.push(await jobs.submit(spec(3)));
    for (const j of four) await jobs.waitForState(j.id, ['running']);
    const fifth = await jobs.submit(spec(0));
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await jobs.get(fifth.id)).state).toBe('queued');

    const seen: string[][] = [];
    for (const j of four) {
      expect((await jobs.waitForState(j.id, ['succeeded'], 30_000)).runnerId).toBe(ids.v100x8);
      seen.push((await jobs.log(j.id)).trim().split(','));
    }
    for (const set of seen) expect(set).toHaveLength(2);
    const all = seen.flat();
    expect(new Set(all).size).toBe(8);
    expect(new Set(all)).toEqual(new Set(big.gpus.map((g) => g.uuid)));
    expect((await jobs.waitForState(fifth.id, ['succeeded'], 30_000)).runnerId).toBe(ids.v100x8);
  });

  it('refuses a job no runner could ever take, saying why', async () => {
    const tooMany = await fleet.rbtk(['job', 'submit', '--pool', 'gpu', '--image', TEST_IMAGE, '--gpus', '9', '--', 'true']);
    expect(tooMany.code).not.toBe(0);
    expect(tooMany.stderr).toMatch(/9 usable GPU/);
    const wrongModel = await jobs.submit({
      pool: 'gpu',
      requires: { gpus: 1, gpuModel: 'H100' },
      executor: { type: 'docker', image: TEST_IMAGE, command: ['true'] },
    }).catch((err: Error) => err);
    expect(String(wrongModel)).toMatch(/H100/);
  });
});
