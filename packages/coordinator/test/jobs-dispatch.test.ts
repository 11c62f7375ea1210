import { ROUTES } from '@rbtk/protocol';
import { describe, expect, it } from 'vitest';
import { eventually, sleep } from './helpers.js';
import { jobsFixture } from './jobs-helpers.js';

describe('job dispatch', () => {
  const { start, runner, submit, job, tc } = jobsFixture();
  const state = (id: string, want: string) => eventually(async () => ((await job(id)).state === want ? job(id) : null));

  it('assigns in FIFO order and records every state change', async () => {
    await start();
    const r = await runner('fifo');
    const ids = [await submit('fifo'), await submit('fifo'), await submit('fifo')];
    for (const id of ids) {
      const a = await r.take();
      expect(a).toMatchObject({ jobId: id, attempt: 1, acceptWithinMs: 10_000, timeoutMs: 3_600_000 });
      expect(await r.complete(a)).toMatchObject({ accepted: true });
    }
    const done = await state(ids[2]!, 'succeeded');
    expect(done).toMatchObject({ attempt: 1, exitCode: 0, runnerId: r.runnerId });
    expect(done.startedAt).not.toBeNull();
    expect(done.finishedAt).not.toBeNull();
  });

  it('two runners share a queue, and no runner gets more than its max slots', async () => {
    await start();
    const a = await runner('shared', { name: 'a', maxJobs: 2 });
    const b = await runner('shared', { name: 'b', maxJobs: 1 });
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await submit('shared'));
    const aJobs = [await a.take(), await a.take()];
    const bJobs = [await b.take()];
    // Full: nothing more until a slot frees.
    await expect(a.next('assign', () => true, 300)).rejects.toThrow();
    await expect(b.next('assign', () => true, 10)).rejects.toThrow();
    const taken = new Set([...aJobs, ...bJobs].map((x) => x.jobId));
    expect(taken).toEqual(new Set(ids.slice(0, 3)));
    await b.complete(bJobs[0]!);
    const fourth = await b.take();
    expect(fourth.jobId).toBe(ids[3]);
    await a.complete(aJobs[0]!);
    expect((await a.take()).jobId).toBe(ids[4]);
  });

  it('a result hands its slot straight to the next queued job, in the same commit, and a refused one hands on nothing', async () => {
    await start();
    const r = await runner('handoff', { maxJobs: 1 });
    const ids = [await submit('handoff'), await submit('handoff'), await submit('handoff')];
    const first = await r.take();
    expect(first.jobId).toBe(ids[0]);
    // A result for an attempt the runner does not hold is refused, and frees no slot: nothing more is assigned.
    expect(await r.result({ jobId: first.jobId, attempt: first.attempt + 5 }, 'succeeded', 0)).toMatchObject({ accepted: false });
    await expect(r.next('assign', () => true, 300)).rejects.toThrow();
    // The real one: the next job is assigned in the transaction that stores the result, so its assign
    // is already here when the result_ack arrives (a dispatch pass after the commit would send it later).
    expect(await r.complete(first)).toMatchObject({ accepted: true });
    const handedOn = r.inbox.drain((m) => m.type === 'assign');
    expect(handedOn).toMatchObject([{ jobId: ids[1], attempt: 1 }]);
    const second = handedOn[0] as { jobId: string; attempt: number };
    r.send({ type: 'accept', jobId: second.jobId, attempt: second.attempt });
    expect((await job(ids[0]!)).state).toBe('succeeded');
    // Still never more than max_jobs: the third waits for the second's result.
    await expect(r.next('assign', () => true, 300)).rejects.toThrow();
    await r.complete(second);
    expect((await r.take()).jobId).toBe(ids[2]);
  });

  it('an assignment not accepted in time goes to another runner (accept_timeout, no retry used)', async () => {
    await start({ acceptTimeoutMs: 300 });
    const slow = await runner('acc', { name: 'slow' });
    const id = await submit('acc');
    const first = await slow.next('assign');
    const fast = await runner('acc', { name: 'fast' });
    const second = await fast.take();
    expect(second).toMatchObject({ jobId: id, attempt: 2 });
    // The slow runner is told to drop the attempt it never accepted.
    expect(await slow.next('cancel')).toMatchObject({ jobId: id, attempt: first.attempt, reason: 'stale' });
    await fast.complete(second);
    expect(await state(id, 'succeeded')).toMatchObject({ attempt: 2, runnerId: fast.runnerId });
  });

  it("another runner's accept or started for an attempt does not cancel its runner's accept deadline", async () => {
    await start({ acceptTimeoutMs: 400 });
    const owner = await runner('fenced', { name: 'owner' });
    // In another pool: when the job is requeued it has nowhere to go, so it stays queued for us to see.
    const intruder = await runner('elsewhere', { name: 'intruder' });
    const id = await submit('fenced');
    const a = await owner.next('assign');
    intruder.send({ type: 'accept', jobId: id, attempt: a.attempt });
    intruder.send({ type: 'started', jobId: id, attempt: a.attempt });
    // The owner never accepts: at the accept timeout the job is taken back and the owner told to drop it.
    expect(await owner.next('cancel', () => true, 3_000)).toMatchObject({ jobId: id, attempt: a.attempt, reason: 'stale' });
    expect(await state(id, 'queued')).toMatchObject({ attempt: a.attempt, runnerId: null, reason: 'accept_timeout' });
    // The intruder's frames changed nothing and cost it nothing: its session is still up.
    expect(await intruder.next('cancel', () => true, 200).catch(() => 'none')).toBe('none');
    intruder.send({ type: 'heartbeat', seq: 1 });
    await intruder.next('heartbeat_ack');
  });

  it('a rejected job goes to another runner and never back to the one that rejected it', async () => {
    await start();
    const picky = await runner('rej', { name: 'picky', maxJobs: 4 });
    const id = await submit('rej');
    const a = await picky.next('assign');
    picky.send({ type: 'reject', jobId: id, attempt: a.attempt, reason: 'no space left' });
    expect((await state(id, 'queued')).reason).toBe('rejected: no space left');
    await expect(picky.next('assign', () => true, 300)).rejects.toThrow();
    const other = await runner('rej', { name: 'other' });
    const b = await other.take();
    expect(b).toMatchObject({ jobId: id, attempt: 2 });
  });

  it('a job refused for now (retryable) is requeued without shutting the runner out: it comes back after a rest', async () => {
    await start();
    const r = await runner('busy', { maxJobs: 1 });
    const id = await submit('busy');
    const a = await r.next('assign');
    const refusedAt = performance.now();
    r.send({ type: 'reject', jobId: id, attempt: a.attempt, reason: 'no free slot: 1 of 1 jobs running', retryable: true });
    expect((await state(id, 'queued')).reason).toBe('rejected for now: no free slot: 1 of 1 jobs running');
    // Resting: a refusal that lasts is one offer a second, not a loop.
    await expect(r.next('assign', () => true, 500)).rejects.toThrow();
    const again = await r.next('assign', () => true, 3_000);
    expect(performance.now() - refusedAt).toBeGreaterThanOrEqual(900);
    expect(again).toMatchObject({ jobId: id, attempt: a.attempt + 1 });
    // A second refusal in a row: twice the rest.
    const refusedAgainAt = performance.now();
    r.send({ type: 'reject', jobId: id, attempt: again.attempt, reason: 'cannot write the spool: ENOSPC', retryable: true });
    const third = await r.next('assign', () => true, 5_000);
    expect(performance.now() - refusedAgainAt).toBeGreaterThanOrEqual(1_900);
    expect(third).toMatchObject({ jobId: id, attempt: again.attempt + 1 });
    await r.complete(third);
    expect(await state(id, 'succeeded')).toMatchObject({ runnerId: r.runnerId, attempt: third.attempt });
  });

  it('counts the refusals of one offer as one: a runner refusing both its slots rests 1 s, not 2', async () => {
    await start();
    const r = await runner('twice', { maxJobs: 2 });
    const ids = [await submit('twice'), await submit('twice')];
    const offered = [await r.next('assign'), await r.next('assign')];
    expect(offered.map((a) => a.jobId).sort()).toEqual([...ids].sort());
    const refusedAt = performance.now();
    for (const a of offered) r.send({ type: 'reject', jobId: a.jobId, attempt: a.attempt, reason: 'cannot write the spool: ENOSPC', retryable: true });
    await r.next('assign', () => true, 5_000);
    const rested = performance.now() - refusedAt;
    expect(rested).toBeGreaterThanOrEqual(900);
    expect(rested).toBeLessThan(1_800);
  });

  it('an attempt taken from its runner holds the slot there until the runner reports it ended', async () => {
    await start({ acceptTimeoutMs: 300 });
    const r = await runner('ghost', { maxJobs: 1 });
    const id = await submit('ghost');
    const first = await r.next('assign'); // accepted too late: taken away, and the runner told to stop it
    expect(await r.next('cancel')).toMatchObject({ jobId: id, attempt: first.attempt, reason: 'stale' });
    expect((await job(id)).state).toBe('queued');
    // Still running there as far as anyone knows: no second attempt while it holds the only slot.
    await expect(r.next('assign', () => true, 500)).rejects.toThrow();
    // Its end (a refused result) frees the slot, and the job comes back to the same runner.
    expect(await r.result(first, 'cancelled', null)).toMatchObject({ accepted: false });
    const second = await r.next('assign');
    expect(second).toMatchObject({ jobId: id, attempt: first.attempt + 1 });
    // The same with a reject: the runner says it does not hold attempt 2 (it never got it).
    const third = new Promise((resolve) => setTimeout(resolve, 400)).then(() => r.next('cancel'));
    expect(await third).toMatchObject({ jobId: id, attempt: second.attempt, reason: 'stale' });
    await expect(r.next('assign', () => true, 300)).rejects.toThrow();
    r.send({ type: 'reject', jobId: id, attempt: second.attempt, reason: 'not held: nothing to stop', retryable: true });
    expect(await r.next('assign', () => true, 3_000)).toMatchObject({ jobId: id, attempt: second.attempt + 1 });
  });

  it('a result that commits together with the accept timeout taking its job still frees the slot', async () => {
    await start({ acceptTimeoutMs: 300 });
    const r = await runner('together', { maxJobs: 1 });
    const id = await submit('together');
    const first = await r.next('assign');
    const assignedAt = performance.now();
    // The coordinator runs in this process: hold its event loop past the accept deadline, then send the
    // result (written to the socket at once). On the next turn the expired timer runs before the socket is
    // read, so the requeue and the result are written in the same group commit, the requeue first: the
    // result is refused as stale, and only once it commits is the attempt parked in `stopping`.
    blockFor(assignedAt + 300 + 100 - performance.now());
    r.send({ type: 'result', jobId: id, attempt: first.attempt, outcome: 'succeeded', exitCode: 0, logBytes: 0 });
    expect(await r.next('cancel')).toMatchObject({ jobId: id, attempt: first.attempt, reason: 'stale' });
    expect(await r.next('result_ack')).toMatchObject({ jobId: id, attempt: first.attempt, accepted: false });
    // The result said the attempt ended: its slot is free, and the job comes back to the only runner.
    const second = await r.next('assign', () => true, 3_000);
    expect(second).toMatchObject({ jobId: id, attempt: first.attempt + 1 });
    await r.complete(second);
    expect(await state(id, 'succeeded')).toMatchObject({ attempt: second.attempt });
  });

  it('a job whose cancel was asked for while it was on the way is cancelled, not requeued, when its runner rejects it', async () => {
    await start();
    const r = await runner('cxl', { maxJobs: 1 });
    const id = await submit('cxl');
    const a = await r.next('assign');
    await tc().api('POST', ROUTES.jobCancel(id));
    expect(await r.next('cancel')).toMatchObject({ jobId: id, attempt: a.attempt, reason: 'cancelled' });
    r.send({ type: 'reject', jobId: id, attempt: a.attempt, reason: 'not held: nothing to stop', retryable: true });
    expect(await state(id, 'cancelled')).toMatchObject({ reason: 'cancelled', attempt: a.attempt });
  });

  it('requeues at no cost an assignment its runner does not hold at hello (the assign died with the old socket)', async () => {
    await start();
    const r = await runner('lostassign', { maxJobs: 1 });
    const id = await submit('lostassign'); // retries 0: a charged requeue would fail it
    const first = await r.next('assign');
    r.ws.terminate();
    await r.connect([]);
    const second = await r.next('assign');
    expect(second).toMatchObject({ jobId: id, attempt: first.attempt + 1 });
    await r.complete(second);
    expect(await state(id, 'succeeded')).toMatchObject({ attempt: second.attempt, runnerId: r.runnerId });
  });

  it('keeps waiting for the accept of an attempt held at hello as accepting, and takes it back if none comes', async () => {
    await start({ acceptTimeoutMs: 600 });
    const r = await runner('accepting', { maxJobs: 1 });
    const id = await submit('accepting');
    const first = await r.next('assign');
    // Reconnects while its spool is still being written: it holds the slot, its accept is still to come.
    r.ws.terminate();
    await r.connect([{ jobId: id, attempt: first.attempt, finished: false, accepting: true }]);
    // No accept within the timeout set at the assign: the job is taken back, and the runner told to drop it.
    expect(await r.next('cancel', () => true, 3_000)).toMatchObject({ jobId: id, attempt: first.attempt, reason: 'stale' });
    expect(await job(id)).toMatchObject({ state: 'queued', reason: 'accept_timeout', attempt: first.attempt });

    // Its end frees the slot; this time it says hello while still writing, then accepts: the job stays.
    r.send({ type: 'reject', jobId: id, attempt: first.attempt, reason: 'not held: nothing to stop', retryable: true });
    const second = await r.next('assign', () => true, 3_000);
    r.ws.terminate();
    await r.connect([{ jobId: id, attempt: second.attempt, finished: false, accepting: true }]);
    r.send({ type: 'accept', jobId: id, attempt: second.attempt });
    await sleep(900);
    expect(await job(id)).toMatchObject({ state: 'assigned', attempt: second.attempt, runnerId: r.runnerId });
    await r.complete(second);
    expect(await state(id, 'succeeded')).toMatchObject({ attempt: second.attempt });
  });

  it('charges a retry for a started attempt its runner does not hold at hello (lost with its spool)', async () => {
    await start();
    const r = await runner('loststarted', { maxJobs: 1 });
    const id = await submit('loststarted');
    const first = await r.take();
    r.started(first);
    await state(id, 'running');
    r.ws.terminate();
    await r.connect([]);
    expect(await state(id, 'failed')).toMatchObject({ reason: 'runner_lost', attempt: first.attempt });
  });

  it('refuses a result from a stale attempt, and acks its logs so the runner can drop them', async () => {
    await start({ acceptTimeoutMs: 300 });
    const old = await runner('stale', { name: 'old' });
    const id = await submit('stale');
    const first = await old.next('assign'); // never accepted: times out
    const fresh = await runner('stale', { name: 'fresh' });
    const second = await fresh.take();
    expect(second.attempt).toBe(2);
    expect(await old.log(first, 0, 'late output')).toMatchObject({ offset: 11 });
    expect(await old.result(first, 'failed', 1)).toEqual({
      type: 'result_ack',
      jobId: id,
      attempt: first.attempt,
      accepted: false,
      reason: 'stale attempt',
    });
    fresh.started(second);
    expect(await fresh.log(second, 0, 'mine')).toMatchObject({ offset: 4 });
    await fresh.result(second, 'succeeded', 0, 4);
    const done = await state(id, 'succeeded');
    expect(done.logBytes).toBe(4);
    expect((await tc().api('GET', ROUTES.jobLogs(id))).body).toEqual([{ jobId: id, offset: 0, stream: 'stdout', data: 'mine' }]);
  });

  it('stores logs in order: duplicates dropped, a gap answered with the stored length', async () => {
    await start();
    const r = await runner('logs');
    const id = await submit('logs');
    const a = await r.take();
    r.started(a);
    expect((await r.log(a, 0, 'hello ')).offset).toBe(6);
    expect((await r.log(a, 0, 'hello ')).offset).toBe(6); // duplicate
    expect((await r.log(a, 20, 'later')).offset).toBe(6); // gap: resend from 6
    expect((await r.log(a, 6, 'wörld', 'stderr')).offset).toBe(12);
    const logs = await tc().api('GET', `${ROUTES.jobLogs(id)}?offset=3`);
    expect(logs.body).toEqual([
      { jobId: id, offset: 3, stream: 'stdout', data: 'lo ' },
      { jobId: id, offset: 6, stream: 'stderr', data: 'wörld' },
    ]);
  });

  it('retries a failed attempt while retries remain, then fails', async () => {
    await start();
    const r = await runner('retry');
    const id = await submit('retry', { retries: 1 });
    const a1 = await r.take();
    r.started(a1);
    await r.result(a1, 'failed', 2);
    const a2 = await r.take();
    expect(a2.attempt).toBe(2);
    r.started(a2);
    await r.result(a2, 'failed', 3);
    expect(await state(id, 'failed')).toMatchObject({ exitCode: 3, attempt: 2, reason: 'exited with code 3' });
  });

  it('cancels a queued job at once and a running one when its runner reports back', async () => {
    await start();
    const r = await runner('cancel');
    const running = await submit('cancel');
    const queued = await submit('cancel');
    const a = await r.take();
    r.started(a);
    await state(running, 'running');
    const q = await tc().api('POST', ROUTES.jobCancel(queued));
    expect(q.body).toMatchObject({ state: 'cancelled', reason: 'cancelled' });
    const c = await tc().api('POST', ROUTES.jobCancel(running));
    expect(c.status).toBe(200);
    expect(c.body.state).toBe('running');
    expect(await r.next('cancel')).toEqual({ type: 'cancel', jobId: running, attempt: 1, reason: 'cancelled' });
    await r.result(a, 'cancelled', null);
    await state(running, 'cancelled');
    const again = await tc().api('POST', ROUTES.jobCancel(running));
    expect(again).toEqual({ status: 409, body: { error: { code: 'job_finished', message: 'job is already cancelled' } } });
    // The cancelled queued job was never assigned.
    await expect(r.next('assign', () => true, 300)).rejects.toThrow();
  });

  it('marks a job timed_out 30 s past its timeout when its runner stays silent (backstop)', async () => {
    let clock = Date.now();
    await start({ now: () => clock });
    const r = await runner('slowpoke');
    const id = await submit('slowpoke', { timeout: '1s' });
    const a = await r.take();
    r.started(a);
    await state(id, 'running');
    clock += 31_000 + 1000;
    expect(await r.next('cancel')).toMatchObject({ jobId: id, attempt: 1, reason: 'timed_out' });
    expect(await state(id, 'timed_out')).toMatchObject({ attempt: 1 });
    await sleep(10);
  });

  it('marks an accepted job that never starts timed_out too, 30 s past its timeout from the assignment', async () => {
    let clock = Date.now();
    await start({ now: () => clock });
    const r = await runner('wedged');
    const id = await submit('wedged', { timeout: '1s' });
    const a = await r.take(); // accepted, and then nothing: no started, no result
    await sleep(50);
    expect((await job(id)).state).toBe('assigned');
    clock += 31_000 + 1000;
    expect(await r.next('cancel')).toMatchObject({ jobId: id, attempt: a.attempt, reason: 'timed_out' });
    expect(await state(id, 'timed_out')).toMatchObject({ attempt: 1, reason: "no result 30s after the job's 1s timeout" });
  });
});

/** Holds this process's event loop (and so the in-process coordinator's) for `ms`. */
function blockFor(ms: number): void {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
