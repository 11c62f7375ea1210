import { ROUTES } from '@rbtk/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, TestCoordinator, tempDir } from './helpers.js';
import { shellJob, SimRunner } from './jobs-helpers.js';

describe('jobs when runners go away', () => {
  const coordinators: TestCoordinator[] = [];
  const runners: SimRunner[] = [];
  const dirs: ReturnType<typeof tempDir>[] = [];
  const start = async (opts: Parameters<typeof TestCoordinator.start>[0] = {}) => {
    const tc = await TestCoordinator.start({ heartbeatIntervalMs: 100, offlineAfterMs: 400, ...opts });
    coordinators.push(tc);
    return tc;
  };
  const runner = async (tc: TestCoordinator, pool: string, name: string) => {
    const r = await SimRunner.start(tc, pool, { name });
    runners.push(r);
    return r;
  };
  const submit = async (tc: TestCoordinator, pool: string, extra = {}) => {
    const res = await tc.api('POST', ROUTES.jobs, { body: shellJob(pool, extra) });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  };
  const job = async (tc: TestCoordinator, id: string) => (await tc.api('GET', ROUTES.job(id))).body;
  const until = (tc: TestCoordinator, id: string, ok: (j: any) => boolean) =>
    eventually(async () => {
      const j = await job(tc, id);
      return ok(j) ? j : null;
    });

  afterEach(async () => {
    for (const r of runners.splice(0)) r.terminate();
    for (const tc of coordinators.splice(0)) await tc.stop();
    for (const d of dirs.splice(0)) d.cleanup();
  });

  it('OFFLINE requeues within retries (runner_lost); the returning runner is told to cancel the stale attempt', async () => {
    const tc = await start();
    const lost = await runner(tc, 'live', 'lost');
    const id = await submit(tc, 'live', { retries: 1 });
    const a = await lost.take();
    lost.started(a);
    await until(tc, id, (j) => j.state === 'running');
    // No heartbeats from `lost`: it goes OFFLINE and its attempt is requeued.
    const requeued = await until(tc, id, (j) => j.state === 'queued');
    expect(requeued).toMatchObject({ reason: 'runner_lost', attempt: 1, runnerId: null });
    // Its socket is still open: it hears at once that the attempt is stale.
    expect(await lost.next('cancel')).toEqual({ type: 'cancel', jobId: id, attempt: 1, reason: 'stale' });

    const healthy = await runner(tc, 'live', 'healthy');
    healthy.keepAlive();
    const b = await healthy.take();
    expect(b).toMatchObject({ jobId: id, attempt: 2 });

    // The lost runner comes back still holding attempt 1.
    lost.terminate();
    await lost.connect([{ jobId: id, attempt: 1, finished: true }]);
    expect(await lost.next('cancel')).toEqual({ type: 'cancel', jobId: id, attempt: 1, reason: 'stale' });
    expect(await lost.result(a, 'succeeded', 0)).toMatchObject({ accepted: false, reason: 'stale attempt' });
    await healthy.complete(b);
    expect(await until(tc, id, (j) => j.state === 'succeeded')).toMatchObject({ attempt: 2, runnerId: healthy.runnerId });
  });

  it('OFFLINE with no retries left fails the job with runner_lost', async () => {
    const tc = await start();
    const r = await runner(tc, 'once', 'r');
    const id = await submit(tc, 'once');
    const a = await r.take();
    r.started(a);
    expect(await until(tc, id, (j) => j.state === 'failed')).toMatchObject({ reason: 'runner_lost', attempt: 1 });
  });

  it('OFFLINE before the job started (accepted, pulling) requeues it at no cost, even with no retries', async () => {
    const tc = await start();
    const r = await runner(tc, 'pull', 'r');
    const id = await submit(tc, 'pull');
    await r.take(); // accepted and never started: an image pull, say, when the host's network went away
    const requeued = await until(tc, id, (j) => j.state === 'queued');
    expect(requeued).toMatchObject({ reason: 'runner_lost', attempt: 1, runnerId: null });
    const other = await runner(tc, 'pull', 'other');
    other.keepAlive();
    const b = await other.take();
    expect(b).toMatchObject({ jobId: id, attempt: 2 });
    await other.complete(b);
    expect(await until(tc, id, (j) => j.state === 'succeeded')).toMatchObject({ attempt: 2 });
  });

  it('a job lost before it starts, again and again (it brings its runners down), is free only for its first 3 attempts', async () => {
    const tc = await start({ offlineAfterMs: 60_000 });
    const r = await runner(tc, 'crash', 'r');
    const id = await submit(tc, 'crash');
    for (let attempt = 1; attempt <= 4; attempt++) {
      expect(await r.take()).toMatchObject({ jobId: id, attempt });
      // The runner dies before the job starts, and says hello again holding nothing.
      r.terminate();
      await r.connect();
      if (attempt < 4) expect(await until(tc, id, (j) => j.state === 'queued' || j.attempt > attempt)).toMatchObject({ reason: 'runner_lost' });
    }
    // The 4th loss counts as a failure, and with no retries the job fails instead of going round again.
    expect(await until(tc, id, (j) => j.state === 'failed')).toMatchObject({ reason: 'runner_lost', attempt: 4 });
  });

  it('a runner that reconnects in time keeps its attempt; one it no longer holds is requeued', async () => {
    const tc = await start({ offlineAfterMs: 60_000 });
    const r = await runner(tc, 'blip', 'r');
    r.opts.maxJobs = 2;
    r.terminate();
    await r.connect();
    const kept = await submit(tc, 'blip', { retries: 1 });
    const dropped = await submit(tc, 'blip', { retries: 1 });
    const a = await r.take();
    const b = await r.take();
    r.started(a);
    await until(tc, kept, (j) => j.state === 'running');
    r.terminate();
    await r.connect([{ jobId: a.jobId, attempt: a.attempt, finished: false }]);
    // The attempt it no longer holds is requeued as runner_lost and handed out again.
    const again = await r.take();
    expect(again).toMatchObject({ jobId: b.jobId, attempt: 2 });
    expect(await r.result(a, 'succeeded', 0)).toMatchObject({ accepted: true });
    expect(await until(tc, kept, (j) => j.state === 'succeeded')).toMatchObject({ attempt: 1 });
    expect(dropped).toBe(b.jobId);
  });

  it('revoking a runner requeues its jobs as runner_revoked', async () => {
    const tc = await start({ offlineAfterMs: 60_000 });
    const r = await runner(tc, 'rev', 'r');
    const id = await submit(tc, 'rev', { retries: 1 });
    const a = await r.take();
    r.started(a);
    await until(tc, id, (j) => j.state === 'running');
    expect((await tc.api('POST', ROUTES.runnerRevoke(r.runnerId))).status).toBe(200);
    expect(await r.closed).toBe(4401);
    expect(await until(tc, id, (j) => j.state === 'queued')).toMatchObject({ reason: 'runner_revoked', attempt: 1 });
    const other = await runner(tc, 'rev', 'other');
    expect(await other.take()).toMatchObject({ jobId: id, attempt: 2 });
  });

  it('cancelling a job whose runner is OFFLINE cancels it at once', async () => {
    const tc = await start();
    const r = await runner(tc, 'gone', 'r');
    const id = await submit(tc, 'gone', { retries: 5 });
    const a = await r.take();
    r.started(a);
    r.terminate();
    // Cancel before liveness notices: it waits for the runner; once OFFLINE it is cancelled, not requeued.
    expect((await tc.api('POST', ROUTES.jobCancel(id))).body.state).toBe('running');
    expect(await until(tc, id, (j) => j.state !== 'running')).toMatchObject({ state: 'cancelled' });
  });

  it('a restarted coordinator keeps queued jobs and dispatches them when runners return', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const tc1 = await start({ dataDir: dir.dir, offlineAfterMs: 60_000 });
    const r = await runner(tc1, 'persist', 'r');
    const running = await submit(tc1, 'persist');
    const a = await r.take();
    r.started(a);
    await until(tc1, running, (j) => j.state === 'running');
    const queued = [await submit(tc1, 'persist'), await submit(tc1, 'persist')];
    r.terminate();
    await tc1.stop();
    coordinators.splice(coordinators.indexOf(tc1), 1);

    const tc2 = await start({ dataDir: dir.dir, offlineAfterMs: 60_000 });
    expect((await job(tc2, queued[0]!)).state).toBe('queued');
    expect((await job(tc2, running)).state).toBe('running');
    r.tc = tc2;
    await r.connect([{ jobId: a.jobId, attempt: a.attempt, finished: true }]);
    expect(await r.result(a, 'succeeded', 0)).toMatchObject({ accepted: true });
    for (const id of queued) {
      const next = await r.take();
      expect(next.jobId).toBe(id);
      await r.complete(next);
    }
    expect(await until(tc2, queued[1]!, (j) => j.state === 'succeeded')).toMatchObject({ attempt: 1 });
  });

  it('a restarted coordinator waits again for the accept of an attempt held as accepting, and takes it back when none comes', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const tc1 = await start({ dataDir: dir.dir, offlineAfterMs: 60_000, acceptTimeoutMs: 60_000 });
    const r = await runner(tc1, 'spooling', 'r');
    const id = await submit(tc1, 'spooling');
    const a = await r.next('assign');
    r.terminate();
    await tc1.stop();
    coordinators.splice(coordinators.indexOf(tc1), 1);

    // The new process has no timer for the assignment: the hello's accepting mark starts one.
    const tc2 = await start({ dataDir: dir.dir, offlineAfterMs: 60_000, acceptTimeoutMs: 500 });
    r.tc = tc2;
    await r.connect([{ jobId: id, attempt: a.attempt, finished: false, accepting: true }]);
    expect((await job(tc2, id)).state).toBe('assigned');
    expect(await r.next('cancel', () => true, 3_000)).toMatchObject({ jobId: id, attempt: a.attempt, reason: 'stale' });
    expect(await job(tc2, id)).toMatchObject({ state: 'queued', reason: 'accept_timeout' });
  });
});
