import { type Gpu, type GpuInventory, type JobSpecInput, ROUTES } from '@rbtk/protocol';
import { describe, expect, it } from 'vitest';
import { eventually } from './helpers.js';
import { jobsFixture, shellJob } from './jobs-helpers.js';

const gpu = (index: number, name: string, memoryMiB: number): Gpu => ({
  index,
  uuid: `GPU-${name.replace(/\W/g, '')}-${index}`,
  name,
  memoryMiB,
  mig: { mode: 'disabled', devices: [] },
});

/** A mixed host: two A100s and two T4s. */
const MIXED: GpuInventory = {
  gpus: [gpu(0, 'NVIDIA A100-SXM4-80GB', 81920), gpu(1, 'NVIDIA A100-SXM4-80GB', 81920), gpu(2, 'Tesla T4', 15360), gpu(3, 'Tesla T4', 15360)],
  driverVersion: '550.54.15',
  cudaVersion: '12.4',
  usable: true,
};
const A100S = ['GPU-NVIDIAA100SXM480GB-0', 'GPU-NVIDIAA100SXM480GB-1'];
const T4S = ['GPU-TeslaT4-2', 'GPU-TeslaT4-3'];

// The coordinator chooses which GPUs an attempt gets and names them in the assign:
// on a mixed host a count alone cannot tell an A100 job from a T4 one.
describe('GPU assignment by uuid', () => {
  const fixture = jobsFixture();
  const { start, runner, tc } = fixture;
  const DOCKER: JobSpecInput['executor'] = { type: 'docker', image: 'busybox', command: ['true'] };

  const setup = async (inventory: GpuInventory) => {
    await start();
    return runner('gpu', { executors: ['docker'], maxJobs: 8, gpus: inventory });
  };
  /** The raw answer, for the refusals. */
  const submit = (requires: Record<string, unknown>) =>
    tc().api('POST', ROUTES.jobs, { body: shellJob('gpu', { requires, executor: DOCKER }) });
  /** Accepted (201): the job's id. */
  const submitted = (requires: Record<string, unknown>) => fixture.submit('gpu', { requires, executor: DOCKER });

  it('hands out disjoint GPUs that meet the model and memory predicates, and frees them when the attempt ends', async () => {
    const r = await setup(MIXED);
    const a100Job = await submitted({ gpus: 2, gpuModel: 'a100' });
    const first = await r.take();
    expect(first.jobId).toBe(a100Job);
    expect(first.gpuIds).toEqual(A100S);

    // Two GPUs are still free, but they are T4s: a second A100 job waits...
    const waiting = await submitted({ gpus: 2, gpuMemoryMiB: 40_000 });
    await expect(r.next('assign', () => true, 300)).rejects.toThrow();
    // ...while a job that takes any GPU gets one of the T4s.
    const anyJob = await submitted({ gpus: 1 });
    const second = await r.take();
    expect(second.jobId).toBe(anyJob);
    expect(T4S).toContain(second.gpuIds![0]);
    expect(second.gpuIds).toHaveLength(1);

    await r.complete(first);
    const third = await r.take();
    expect(third.jobId).toBe(waiting);
    expect(third.gpuIds).toEqual(A100S);
  });

  it('assigns no gpuIds to a job without GPUs, and refuses predicates no GPU meets', async () => {
    const r = await setup(MIXED);
    await submitted({});
    expect((await r.take()).gpuIds).toBeUndefined();
    const res = await submit({ gpus: 1, gpuMemoryMiB: 100_000 });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'unsatisfiable' });
    expect(res.body.error.message).toContain('at least 100000 MiB each');
  });

  it('keeps the GPUs of attempts a reconnecting runner still holds', async () => {
    const r = await setup(MIXED);
    await submitted({ gpus: 2, gpuModel: 'A100' });
    const held = await r.take();
    r.started(held);
    await eventually(async () => ((await tc().api('GET', ROUTES.job(held.jobId))).body.state === 'running' ? true : null));
    r.ws.terminate();
    await r.connect([{ jobId: held.jobId, attempt: held.attempt, finished: false, gpus: held.gpuIds }]);
    // The held A100s are not handed out again; the T4s are.
    const next = await submitted({ gpus: 2 });
    const assign = await r.take();
    expect(assign.jobId).toBe(next);
    expect(assign.gpuIds).toEqual(T4S);
  });

  it('keeps the GPUs of a stale attempt the runner still runs (held at hello, told to stop) until it ends', async () => {
    await start({ offlineAfterMs: 400, heartbeatIntervalMs: 100 });
    const r = await runner('gpu', { executors: ['docker'], maxJobs: 8, gpus: MIXED });
    const lost = await submitted({ gpus: 2, gpuModel: 'A100' });
    const held = await r.take();
    r.started(held);
    // Away past OFFLINE: its attempt is lost (failed, no retries), and another A100 job waits for a runner.
    r.terminate();
    await eventually(async () => ((await tc().api('GET', ROUTES.job(lost))).body.state === 'failed' ? true : null));
    const next = await submitted({ gpus: 2, gpuModel: 'A100' });
    // Back, still running the lost attempt: told to stop it, and its A100s stay taken until it ends.
    await r.connect([{ jobId: held.jobId, attempt: held.attempt, finished: false, gpus: held.gpuIds }]);
    r.keepAlive();
    expect(await r.next('cancel')).toMatchObject({ jobId: lost, attempt: held.attempt, reason: 'stale' });
    await expect(r.next('assign', () => true, 300)).rejects.toThrow();
    await r.result(held, 'cancelled', 143); // acknowledged (the job's last attempt, already settled): either way it ended
    expect(await r.take()).toMatchObject({ jobId: next, gpuIds: A100S });
  });

  it('offers no GPUs of a host whose Docker cannot serve them', async () => {
    await start();
    const r = await runner('gpu', { executors: ['docker'], gpus: { ...MIXED, usable: false, reason: 'no NVIDIA container toolkit' } });
    const res = await submit({ gpus: 1 });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toBe('no runner in pool "gpu" has 1 usable GPU(s)');
    const shown = await tc().api('GET', ROUTES.runner(r.runnerId));
    expect(shown.body).toMatchObject({ gpuUsable: false, gpuUnusableReason: 'no NVIDIA container toolkit' });
    expect(shown.body.gpus).toHaveLength(4);
  });
});
