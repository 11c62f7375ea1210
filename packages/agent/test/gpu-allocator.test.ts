import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Assign, type RunnerMessage } from '@rbtk/protocol';

type AssignInput = import('zod').input<typeof Assign>;
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AttemptResources, Execution, ExecutionResult, Executor } from '../src/executors/executor.js';
import { parseNvidiaSmiXml } from '../src/inventory/gpu-xml.js';
import { GpuAllocator } from '../src/jobs/gpu-allocator.js';
import { JobManager } from '../src/jobs/manager.js';
import { Spool } from '../src/jobs/spool.js';
import { assignFrame, memoryLogger, tempDir, waitUntil } from './helpers/fixtures.js';
import { EIGHT_GPUS, NVIDIA_SMI_FIXTURES } from './helpers/nvidia-smi.js';

/** An executor whose attempts run until the test ends them; it records the GPUs each was given. */
class HoldingExecutor implements Executor {
  readonly given = new Map<string, readonly string[]>();
  private readonly finishers = new Map<string, (r: ExecutionResult) => void>();

  start(attempt: { jobId: string }, _spec: unknown, sink: { started(): void }, _signal?: AbortSignal, resources?: AttemptResources): Execution {
    this.given.set(attempt.jobId, resources?.gpuIds ?? []);
    const done = new Promise<ExecutionResult>((resolve) => this.finishers.set(attempt.jobId, resolve));
    sink.started();
    return { wait: () => done, stop: (reason) => this.finish(attempt.jobId, { outcome: reason.outcome, exitCode: null, message: reason.message }) };
  }

  finish(jobId: string, result: ExecutionResult = { outcome: 'succeeded', exitCode: 0 }): void {
    this.finishers.get(jobId)?.(result);
  }
}

describe('GPU jobs in the job manager (the 8-GPU capture)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let executor: HoldingExecutor;
  let manager: JobManager;
  let allocator: GpuAllocator;
  let sent: RunnerMessage[];
  let uuids: string[];

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    const report = parseNvidiaSmiXml(await readFile(join(NVIDIA_SMI_FIXTURES, EIGHT_GPUS), 'utf8'));
    uuids = report.gpus.map((g) => g.uuid);
    allocator = new GpuAllocator({ gpus: report.gpus, driverVersion: report.driverVersion, cudaVersion: report.cudaVersion, usable: true });
    executor = new HoldingExecutor();
    sent = [];
    manager = new JobManager({
      runnerId: 'runner-gpu',
      config: { max_jobs: 8, executors: ['docker', 'shell'] },
      executors: { docker: executor, shell: executor },
      spool: new Spool(join(dir, 'spool')),
      logger: memoryLogger().logger,
      gpus: allocator,
    });
    manager.attach((frame) => {
      sent.push(frame);
      return true;
    });
  });

  afterEach(async () => {
    await manager.shutdown(0, 0);
    await cleanup();
  });

  const assign = (jobId: string, gpus: number, extra: Partial<AssignInput> = {}) =>
    manager.handle(assignFrame(jobId, { pool: 'gpu', requires: { gpus }, executor: { type: 'docker', image: 'cuda:12', pull: 'never' } }, extra));
  const answer = async (jobId: string) => {
    for (let i = 0; i < 200; i++) {
      const frame = sent.find((f) => 'jobId' in f && f.jobId === jobId && (f.type === 'accept' || f.type === 'reject'));
      if (frame) return frame;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`no accept or reject for ${jobId}`);
  };

  it('gives four 2-GPU attempts disjoint sets, rejects a fifth, and frees GPUs when an attempt ends', async () => {
    for (const id of ['j1', 'j2', 'j3', 'j4']) assign(id, 2);
    for (const id of ['j1', 'j2', 'j3', 'j4']) expect((await answer(id)).type).toBe('accept');
    await waitUntil(() => executor.given.size === 4);
    const sets = ['j1', 'j2', 'j3', 'j4'].map((id) => [...executor.given.get(id)!]);
    expect(sets.every((s) => s.length === 2)).toBe(true);
    expect(new Set(sets.flat()).size).toBe(8);
    expect(sets.flat().sort()).toEqual([...uuids].sort());

    assign('j5', 2);
    expect(await answer('j5')).toEqual({ type: 'reject', jobId: 'j5', attempt: 1, reason: 'the job needs 2 GPUs; 0 of 8 are free on this runner', retryable: true });
    expect(manager.status().find((j) => j.jobId === 'j2')?.gpus).toEqual(sets[1]);

    // However it ends (here: cancelled), the attempt's GPUs come back.
    manager.handle({ type: 'cancel', jobId: 'j2', attempt: 1, reason: 'cancelled' });
    await waitUntil(() => allocator.free().length === 2);
    expect(allocator.free().sort()).toEqual([...sets[1]!].sort());
    assign('j6', 2);
    expect((await answer('j6')).type).toBe('accept');
    await waitUntil(() => executor.given.has('j6'));
    expect([...executor.given.get('j6')!].sort()).toEqual([...sets[1]!].sort());
    for (const id of ['j1', 'j3', 'j4', 'j6']) executor.finish(id);
    await manager.idle();
    expect(allocator.free()).toHaveLength(8);
  });

  it('uses the GPUs the coordinator names, and refuses ones that are taken', async () => {
    assign('a', 2, { gpuIds: [uuids[6]!, uuids[3]!] });
    expect((await answer('a')).type).toBe('accept');
    await waitUntil(() => executor.given.has('a'));
    expect(executor.given.get('a')).toEqual([uuids[6], uuids[3]]);
    assign('b', 1, { gpuIds: [uuids[3]!] });
    expect(await answer('b')).toMatchObject({ type: 'reject', reason: `GPUs not free on this runner: ${uuids[3]}`, retryable: true });
    assign('c', 1, { gpuIds: ['GPU-elsewhere'] });
    expect(await answer('c')).toMatchObject({ type: 'reject', reason: 'GPUs not on this runner: GPU-elsewhere', retryable: false });
  });

  it('rejects GPU jobs the runner cannot serve: shell executor, unusable GPUs', async () => {
    manager.handle(
      Assign.parse({
        type: 'assign', jobId: 's', attempt: 1, timeoutMs: 1000, acceptWithinMs: 1000,
        spec: { pool: 'gpu', requires: { gpus: 1 }, executor: { type: 'shell', command: ['true'] } },
      }),
    );
    expect(await answer('s')).toMatchObject({ type: 'reject', reason: 'GPU jobs run only in the docker executor, not shell', retryable: false });

    const unusable = new GpuAllocator({ gpus: [], driverVersion: null, cudaVersion: null, usable: false });
    expect(unusable.claim('x', 1)).toEqual({ ok: false, reason: 'the job needs 1 GPU; this runner has none' });
    const noToolkit = new GpuAllocator({ gpus: [{ index: 0, uuid: 'GPU-a', name: 'T4', memoryMiB: 15360, mig: { mode: 'unsupported', devices: [] } }], driverVersion: null, cudaVersion: null, usable: false, reason: 'no toolkit' });
    expect(noToolkit.claim('x', 1)).toEqual({ ok: false, reason: "the job needs 1 GPU; this runner's GPUs are not usable: no toolkit" });
  });
});
