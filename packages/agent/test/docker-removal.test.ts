import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { ExecutorSpec, GpuInventory, RunnerMessage } from '@rbtk/protocol';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../src/executors/docker.js';
import { cleanupLeftovers } from '../src/executors/docker-leftovers.js';
import type { AttemptRef, AttemptResources, ExecutionSink, Executor } from '../src/executors/executor.js';
import { GpuAllocator } from '../src/jobs/gpu-allocator.js';
import { JobManager } from '../src/jobs/manager.js';
import { Spool } from '../src/jobs/spool.js';
import { containersLabelled, ensureTestImage, removeContainersLabelled, requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { DockerSocketProxy } from './helpers/docker-socket-proxy.js';
import { assignFrame, memoryLogger, tempDir, waitUntil, type MemoryLog } from './helpers/fixtures.js';
import { MemorySink } from './helpers/sink.js';

const hasDocker = await requireDocker('docker container removal tests');

/** Short retries: the tests take dockerd away for a second or two, not minutes. */
const FAST = { retryForMs: 60_000, backoff: { baseMs: 50, capMs: 200 } };

/*
 * dockerd going away mid-job, for real: the executor talks to the Engine
 * through a unix socket proxy (DockerSocketProxy) that the test takes down
 * (every connection drops, the socket file stays with nobody listening:
 * ECONNREFUSED) and brings back. The real dockerd keeps running for the other
 * tests, and so does the job's container: the removal that finally works is
 * what stops it. The test reaches the real socket directly to inspect.
 */
describe.skipIf(!hasDocker)('removing job containers while dockerd is away', () => {
  const direct = new Docker();
  let dir: string;
  let cleanup: () => Promise<void>;
  let proxy: DockerSocketProxy;
  let viaProxy: Docker;
  let log: MemoryLog;
  let runnerId: string;
  let n = 0;
  const ref = (): AttemptRef => ({ runnerId, jobId: `rmjob${++n}`, attempt: 1 });
  const sh = (script: string) => ({ type: 'docker' as const, image: TEST_IMAGE, command: ['sh', '-c', script], env: {}, pull: 'never' as const });
  const logged = (msg: string) => log.lines.filter((l) => l.msg === msg);
  const loggedLike = (re: RegExp) => log.lines.filter((l) => re.test(String(l.msg)));
  const exists = (name: string) => direct.getContainer(name).inspect().then(() => true, () => false);
  const pending = <T>(p: Promise<T>, ms = 400) => Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms))]);

  beforeAll(async () => {
    await ensureTestImage(direct);
  });
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    proxy = await DockerSocketProxy.start(join(dir, 'docker.sock'));
    viaProxy = new Docker({ socketPath: proxy.path });
    log = memoryLogger();
    runnerId = `rm${randomBytes(6).toString('hex')}`;
  });
  afterEach(async () => {
    await proxy.close();
    await removeContainersLabelled(`rbtk.runner=${runnerId}`, direct);
    await cleanup();
  });

  /** Once the job runs, dockerd "dies": the executor's wait on the container breaks. */
  async function dockerdDiesMidJob(sink: MemorySink): Promise<void> {
    await sink.waitForText('ready');
    // The output flows from the attach before the start request is answered: under load the proxy
    // would go down with that answer in flight ("could not start the container").
    await waitUntil(() => sink.startedCount > 0, 10_000);
    await proxy.down();
  }
  const LOST = /^lost the Docker Engine while the container ran \(dockerd stopped or restarting\?\): \S/;

  it('ends the attempt when dockerd dies mid-job, retries the removal with backoff, and removes the container once dockerd is back', async () => {
    const r = ref();
    const name = `rbtk-${r.jobId}-1`;
    const sink = new MemorySink();
    const execution = new DockerExecutor({ docker: viaProxy, logger: log.logger, removal: FAST }).start(r, sh('echo ready; sleep 300'), sink);
    await dockerdDiesMidJob(sink);

    // dockerode's own wait would never settle here: its response breaks without an end.
    expect(await execution.wait()).toEqual({ outcome: 'failed', exitCode: null, message: expect.stringMatching(LOST) });
    const cleaned = execution.cleanup!(new AbortController().signal);
    expect(await pending(cleaned)).toBe('pending');
    expect(await exists(name)).toBe(true);
    expect(logged('could not remove the job container (is dockerd restarting?); trying again for up to 1m')[0]).toMatchObject({
      container: name,
      jobId: r.jobId,
      attempt: 1,
      err: expect.stringMatching(/ECONNREFUSED/),
    });

    await proxy.up();
    expect(await cleaned).toBe(true);
    expect(await exists(name)).toBe(false);
    expect(logged('removed the job container once dockerd answered again')[0]).toMatchObject({ container: name, tries: expect.any(Number) });
    expect(logged('removed the job container once dockerd answered again')[0]!.tries as number).toBeGreaterThan(1);
  });

  it('gives up when its time is up, and when the daemon stops; the next start\'s sweep removes what is left and reports no attempt', async () => {
    // Bounded: past retryForMs it stops and says so.
    const r1 = ref();
    const sink1 = new MemorySink();
    const bounded = new DockerExecutor({ docker: viaProxy, logger: log.logger, removal: { ...FAST, retryForMs: 300 } }).start(r1, sh('echo ready; sleep 300'), sink1);
    await dockerdDiesMidJob(sink1);
    await bounded.wait();
    expect(await bounded.cleanup!(new AbortController().signal)).toBe(false);
    expect(loggedLike(/^gave up removing the job container after 300ms; the next start of rbtk-runner removes it$/)).toHaveLength(1);

    // Aborted: the daemon stops while dockerd is still away.
    await proxy.up();
    const r2 = ref();
    const sink2 = new MemorySink();
    const stopping = new AbortController();
    const aborted = new DockerExecutor({ docker: viaProxy, logger: log.logger, removal: FAST }).start(r2, sh('echo ready; sleep 300'), sink2);
    await dockerdDiesMidJob(sink2);
    await aborted.wait();
    const cleaned = aborted.cleanup!(stopping.signal);
    expect(await pending(cleaned, 200)).toBe('pending');
    const abortedAt = performance.now();
    stopping.abort();
    expect(await cleaned).toBe(false);
    expect(performance.now() - abortedAt).toBeLessThan(1_000);
    expect(logged('rbtk-runner is stopping before the job container could be removed; the next start of rbtk-runner removes it')).toHaveLength(1);

    // Both are still there; a dockerd that restarts (no live-restore) stops them. The startup sweep
    // removes them and marks them as not running.
    for (const r of [r1, r2]) await direct.getContainer(`rbtk-${r.jobId}-1`).kill();
    const left = await containersLabelled(`rbtk.runner=${runnerId}`, direct);
    expect(left.map((c) => c.State).sort()).toEqual(['exited', 'exited']);
    const swept = await cleanupLeftovers(direct, runnerId);
    expect(swept.map((c) => [c.jobId, c.attempt, c.running, c.error]).sort()).toEqual([
      [r1.jobId, 1, false, undefined],
      [r2.jobId, 1, false, undefined],
    ]);
    expect(await containersLabelled(`rbtk.runner=${runnerId}`, direct)).toEqual([]);

    // Their results were reported (and acknowledged) before: recovery reports nothing for them again.
    const manager = new JobManager({
      runnerId,
      config: { max_jobs: 2, executors: ['docker'] },
      executors: {},
      spool: new Spool(join(dir, 'spool')),
      logger: log.logger,
    });
    await manager.recover(swept);
    expect(manager.heldAttempts()).toEqual([]);
    await manager.shutdown(0, 0);
  });

  /** A job manager on a 2-GPU host whose docker executor goes through the proxy. */
  function gpuHost(removal: typeof FAST) {
    const inventory: GpuInventory = {
      gpus: ['GPU-aaaa', 'GPU-bbbb'].map((uuid, index) => ({ index, uuid, name: 'Tesla T4', memoryMiB: 15360, mig: { mode: 'unsupported' as const, devices: [] } })),
      driverVersion: '550.54',
      cudaVersion: '12.4',
      usable: true,
    };
    const allocator = new GpuAllocator(inventory);
    const docker = new DockerExecutor({ docker: viaProxy, logger: log.logger, removal });
    const sinks = new Map<string, MemorySink>();
    // This engine has no nvidia device driver (DESIGN.md: a stand-in hook at dockerd's start): the GPUs
    // are claimed and held by the manager as on a GPU host, the container runs without the device request.
    const withoutDeviceRequest: Executor = {
      start: (attempt: AttemptRef, spec: ExecutorSpec, sink: ExecutionSink, signal?: AbortSignal, resources: AttemptResources = {}) => {
        const tee = new MemorySink();
        sinks.set(attempt.jobId, tee);
        const both: ExecutionSink = {
          started: (d) => (tee.started(d), sink.started(d)),
          output: (s, data) => (tee.output(s, data), sink.output(s, data)),
        };
        return docker.start(attempt, spec, both, signal, { ...resources, gpuIds: undefined });
      },
    };
    const sent: RunnerMessage[] = [];
    const manager = new JobManager({
      runnerId,
      config: { max_jobs: 2, executors: ['docker'] },
      executors: { docker: withoutDeviceRequest },
      spool: new Spool(join(dir, 'spool')),
      logger: log.logger,
      gpus: allocator,
    });
    manager.attach((frame) => (sent.push(frame), true));
    const gpuJob = (jobId: string) =>
      manager.handle(assignFrame(jobId, { pool: 'gpu', requires: { gpus: 2 }, executor: sh('echo ready; sleep 300') }));
    /** Runs a 2-GPU job, and dockerd dies under it: resolves once its result is out. */
    const runAndLoseDockerd = async (jobId: string) => {
      gpuJob(jobId);
      await waitUntil(() => sinks.has(jobId), 10_000);
      expect(allocator.free()).toEqual([]);
      await dockerdDiesMidJob(sinks.get(jobId)!);
      await waitUntil(() => sent.some((f) => f.type === 'result' && f.jobId === jobId), 10_000);
      return sent.find((f) => f.type === 'result' && f.jobId === jobId);
    };
    return { allocator, manager, sent, gpuJob, runAndLoseDockerd };
  }

  it('keeps the attempt\'s GPUs held until its container is gone', async () => {
    const { allocator, manager, sent, gpuJob, runAndLoseDockerd } = gpuHost(FAST);
    try {
      // The result goes out while the container is still there (still running, even), and the GPUs stay held.
      expect(await runAndLoseDockerd('gpu-a')).toMatchObject({ outcome: 'failed', exitCode: null, message: expect.stringMatching(LOST) });
      await new Promise((r) => setTimeout(r, 300));
      expect(await exists('rbtk-gpu-a-1')).toBe(true);
      expect(allocator.free()).toEqual([]);
      expect(allocator.holders()).toEqual({ 'gpu-a#1': ['GPU-aaaa', 'GPU-bbbb'] });
      // So a job wanting them now is refused for now, not given a GPU the old container may still use.
      gpuJob('gpu-b');
      await waitUntil(() => sent.some((f) => f.type === 'reject' && f.jobId === 'gpu-b'));
      expect(sent.find((f) => f.type === 'reject')).toMatchObject({ reason: 'the job needs 2 GPUs; 0 of 2 are free on this runner', retryable: true });

      await proxy.up();
      await waitUntil(() => allocator.free().length === 2, 10_000);
      expect(await exists('rbtk-gpu-a-1')).toBe(false);
    } finally {
      await manager.shutdown(0, 0);
    }
  });

  it('keeps them held, and says so, when it gives up removing the container', async () => {
    const { allocator, manager, runAndLoseDockerd } = gpuHost({ ...FAST, retryForMs: 300 });
    try {
      await runAndLoseDockerd('gpu-c');
      const reserved = 'the job container could not be removed: its GPUs stay reserved until rbtk-runner restarts';
      await waitUntil(() => logged(reserved).length === 1, 5_000);
      expect(logged(reserved)[0]).toMatchObject({ jobId: 'gpu-c', attempt: 1, gpus: ['GPU-aaaa', 'GPU-bbbb'] });
      // dockerd is back, but nothing removed the container: the GPUs are still not handed out.
      await proxy.up();
      await new Promise((r) => setTimeout(r, 300));
      expect(await exists('rbtk-gpu-c-1')).toBe(true);
      expect(allocator.free()).toEqual([]);
    } finally {
      await manager.shutdown(0, 0);
    }
  });

  it('stops retrying when the daemon stops, without waiting for dockerd', async () => {
    const sent: RunnerMessage[] = [];
    const manager = new JobManager({
      runnerId,
      config: { max_jobs: 1, executors: ['docker'] },
      executors: { docker: new DockerExecutor({ docker: viaProxy, logger: log.logger, removal: FAST }) },
      spool: new Spool(join(dir, 'spool')),
      logger: log.logger,
    });
    manager.attach((frame) => (sent.push(frame), true));
    manager.handle(assignFrame('stop-job', { pool: 'ci', executor: sh('echo ready; sleep 300') }));
    await waitUntil(() => sent.some((f) => f.type === 'started'), 10_000);
    await proxy.down();
    await waitUntil(() => sent.some((f) => f.type === 'result'), 10_000);
    await waitUntil(() => loggedLike(/^could not remove the job container/).length === 1);
    const stoppingAt = performance.now();
    await manager.shutdown(0, 0);
    expect(performance.now() - stoppingAt).toBeLessThan(2_000);
    expect(logged('rbtk-runner is stopping before the job container could be removed; the next start of rbtk-runner removes it')).toHaveLength(1);
    expect(await exists('rbtk-stop-job-1')).toBe(true);
  });
});
