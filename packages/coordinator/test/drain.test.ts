import { PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, ROUTES } from '@rbtk/protocol';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { eventually, sleep, TestCoordinator } from './helpers.js';
import { jobsFixture, shellJob, SimRunner } from './jobs-helpers.js';

describe('drains, pauses and resumes at the coordinator', () => {
  const { runners, start, runner, submit, job, tc } = jobsFixture();
  const runnerOf = async (id: string) => (await tc().api('GET', ROUTES.runner(id))).body;
  const auditOf = async (type: 'runner' | 'pool') => (await tc().api('GET', `${ROUTES.audit}?resourceType=${type}`)).body as { action: string; actor: string; resourceId: string; details: object }[];
  const noAssign = (r: SimRunner, ms = 300) => expect(r.next('assign', () => true, ms)).rejects.toThrow();
  /** Says hello on a socket of its own and returns what the coordinator sent within 300 ms. */
  const rawSession = async (token: string, hello: object) => {
    const ws = new WebSocket(tc().wsUrl, { headers: { authorization: `Bearer ${token}`, [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) } });
    const frames: { type: string; [k: string]: unknown }[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString()) as { type: string }));
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(JSON.stringify(hello));
    await sleep(300);
    ws.terminate();
    return frames;
  };

  it("a runner's own drain frame: DRAINING at once, no assignment, one audit row per change; resume", async () => {
    await start();
    const r = await runner('gpu');
    r.send({ type: 'drain', draining: true, reason: 'rbtk-runner is stopping (SIGTERM)' });
    await eventually(async () => (await runnerOf(r.runnerId)).status === 'DRAINING');
    expect(await runnerOf(r.runnerId)).toMatchObject({ status: 'DRAINING', drainReason: 'rbtk-runner is stopping (SIGTERM)' });
    r.send({ type: 'drain', draining: true, reason: 'rbtk-runner is stopping (SIGTERM)' }); // the same again: no new row
    r.send({ type: 'heartbeat', seq: 0 });
    expect(await r.next('heartbeat_ack')).toMatchObject({ status: 'DRAINING' });

    const id = await submit('gpu');
    await noAssign(r);
    r.send({ type: 'drain', draining: false });
    expect((await r.take()).jobId).toBe(id);
    expect(await runnerOf(r.runnerId)).toMatchObject({ status: 'ONLINE', drainReason: null });
    const rows = (await auditOf('runner')).filter((a) => a.resourceId === r.runnerId && a.action !== 'runner.register');
    expect(rows).toEqual([
      expect.objectContaining({ action: 'runner.drain', actor: `runner:${r.runnerId}`, details: expect.objectContaining({ by: 'runner', reason: 'rbtk-runner is stopping (SIGTERM)' }) }),
      expect.objectContaining({ action: 'runner.resume', actor: `runner:${r.runnerId}` }),
    ]);
  });

  it('a hello that says it drains: welcome DRAINING, no assignment', async () => {
    await start();
    const r = await runner('gpu');
    r.terminate();
    await eventually(async () => !(await runnerOf(r.runnerId)).connected);
    const id = await submit('gpu');
    const frames = await rawSession(r.token, { ...r.hello(), drainReason: 'drained on the host (rbtk-runner drain)' });
    expect(frames[0]).toMatchObject({ type: 'welcome', status: 'DRAINING' });
    expect(frames.filter((f) => f.type === 'assign')).toEqual([]);
    expect(await runnerOf(r.runnerId)).toMatchObject({ status: 'DRAINING', drainReason: 'drained on the host (rbtk-runner drain)' });
    expect((await job(id)).state).toBe('queued');
  });

  it('rbtk runner drain: the runner is told, it outlives a reconnect, resume lifts it; 404 for an unknown runner', async () => {
    await start();
    const r = await runner('gpu');
    const drained = await tc().api('POST', ROUTES.runnerDrain(r.runnerId));
    expect(drained.status).toBe(200);
    expect(drained.body).toMatchObject({ id: r.runnerId, status: 'DRAINING', connected: true, drainReason: 'drained by an operator (rbtk runner drain)' });
    expect(await r.next('drain')).toEqual({ type: 'drain', draining: true, reason: 'drained by an operator (rbtk runner drain)' });
    const id = await submit('gpu');
    await noAssign(r);

    r.terminate();
    await r.connect();
    expect(await r.next('drain')).toEqual({ type: 'drain', draining: true, reason: 'drained by an operator (rbtk runner drain)' });
    await noAssign(r);

    const resumed = await tc().api('POST', ROUTES.runnerResume(r.runnerId));
    expect(resumed.body).toMatchObject({ status: 'ONLINE', drainReason: null });
    expect(await r.next('drain')).toEqual({ type: 'drain', draining: false });
    expect((await r.take()).jobId).toBe(id);

    const rows = (await auditOf('runner')).filter((a) => a.actor.startsWith('admin:'));
    expect(rows.map((a) => [a.action, a.resourceId])).toEqual([
      ['runner.drain', r.runnerId],
      ['runner.resume', r.runnerId],
    ]);
    expect((await tc().api('POST', ROUTES.runnerDrain('nope'))).status).toBe(404);
  });

  it('a job the runner rejects while it drains goes back to the queue, and may come back to it after resume', async () => {
    await start();
    const r = await runner('gpu');
    const id = await submit('gpu');
    const first = await r.next('assign');
    // The assignment crossed the drain on the wire: the runner drains, then refuses it.
    r.send({ type: 'drain', draining: true, reason: 'drained on the host (rbtk-runner drain)' });
    r.send({ type: 'reject', jobId: id, attempt: first.attempt, reason: 'rbtk-runner is draining: drained on the host (rbtk-runner drain)' });
    await eventually(async () => (await job(id)).state === 'queued');
    await noAssign(r);
    r.send({ type: 'drain', draining: false });
    expect(await r.next('assign')).toMatchObject({ jobId: id, attempt: first.attempt + 1 });
  });

  it('pool pause: jobs queue, none starts, runners stay ONLINE; resume starts them', async () => {
    await start();
    const r = await runner('gpu');
    const paused = await tc().api('POST', ROUTES.poolPause('gpu'));
    expect(paused.body).toMatchObject({ name: 'gpu', status: 'paused', runners: { online: 1, draining: 0 } });
    const ids = [await submit('gpu'), await submit('gpu')];
    await noAssign(r);
    expect((await job(ids[0]!)).state).toBe('queued');
    expect((await tc().api('POST', ROUTES.poolResume('gpu'))).body).toMatchObject({ status: 'active' });
    const a = await r.take();
    expect(a.jobId).toBe(ids[0]);
    await r.complete(a);
    expect((await r.take()).jobId).toBe(ids[1]);
    const rows = (await auditOf('pool')).filter((x) => x.action !== 'pool.create');
    expect(rows.map((x) => [x.action, x.details])).toEqual([
      ['pool.pause', { from: 'active', to: 'paused' }],
      ['pool.resume', { from: 'paused', to: 'active' }],
    ]);
  });

  it('pool drain: every runner DRAINING and told, the running job finishes; the delete refusal counts runners and jobs', async () => {
    await start();
    const [a, b] = [await runner('gpu', { name: 'a' }), await runner('gpu', { name: 'b' })];
    const id = await submit('gpu');
    const assigned = await eventually(async () => ((await job(id)).state === 'assigned' ? job(id) : null));
    const holder = assigned.runnerId === a.runnerId ? a : b;
    const taken = await holder.take();
    holder.started(taken);

    const busy = await tc().api('DELETE', ROUTES.pool('gpu'));
    expect(busy.body.error.message).toBe('pool gpu still has 2 online runner(s) and 1 job(s) in flight — drain it first');

    const drained = await tc().api('POST', ROUTES.poolDrain('gpu'));
    expect(drained.body).toMatchObject({ status: 'draining', runners: { online: 0, draining: 2 } });
    for (const r of [a, b]) expect(await r.next('drain')).toEqual({ type: 'drain', draining: true, reason: 'pool gpu is draining' });
    expect((await runnerOf(a.runnerId)).drainReason).toBe('pool gpu is draining');
    const refused = await tc().api('DELETE', ROUTES.pool('gpu'));
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toBe('pool gpu still has 0 online runner(s) and 1 job(s) in flight — drain it first');

    const waiting = await submit('gpu');
    await holder.result(taken);
    await noAssign(a);
    await noAssign(b, 10);
    const queued = await tc().api('DELETE', ROUTES.pool('gpu'));
    expect(queued.body.error.message).toBe('pool gpu still has 1 queued job(s) — cancel them first (rbtk job cancel)');

    // An operator's own drain of a runner outlives the pool's resume.
    await tc().api('POST', ROUTES.runnerDrain(a.runnerId));
    expect((await tc().api('POST', ROUTES.poolResume('gpu'))).body).toMatchObject({ status: 'active', runners: { online: 1, draining: 1 } });
    expect(await b.next('drain')).toEqual({ type: 'drain', draining: false });
    expect((await b.take()).jobId).toBe(waiting);
    expect((await runnerOf(a.runnerId)).drainReason).toBe('drained by an operator (rbtk runner drain)');
    expect((await tc().api('POST', ROUTES.poolPause('nope'))).status).toBe(404);
  });

  it('a paused pool stays paused across a coordinator restart', async () => {
    const first = await start();
    await first.createPool('gpu');
    await first.api('POST', ROUTES.poolPause('gpu'));
    await first.coordinator.stop(); // afterEach removes its directory
    const again = await TestCoordinator.start({ dataDir: first.coordinator.dataDir });
    try {
      const r = await SimRunner.start(again, 'gpu');
      runners.push(r);
      const res = await again.api('POST', ROUTES.jobs, { body: shellJob('gpu') });
      await expect(r.next('assign', () => true, 300)).rejects.toThrow();
      await again.api('POST', ROUTES.poolResume('gpu'));
      expect((await r.next('assign')).jobId).toBe(res.body.id);
    } finally {
      for (const r of runners.splice(0)) r.terminate();
      await again.stop();
    }
  });

  it('--min-runner-version goes out in welcome and every heartbeat_ack; a bad one is refused at start', async () => {
    await start({ minRunnerVersion: '2.0.0' });
    const r = await runner('gpu');
    r.terminate();
    expect((await rawSession(r.token, r.hello()))[0]).toMatchObject({ type: 'welcome', minRunnerVersion: '2.0.0' });
    await r.connect();
    r.send({ type: 'heartbeat', seq: 0 });
    expect(await r.next('heartbeat_ack')).toMatchObject({ minRunnerVersion: '2.0.0' });
    await expect(TestCoordinator.start({ minRunnerVersion: 'soon' })).rejects.toThrow(/semantic version/);
  });
});
