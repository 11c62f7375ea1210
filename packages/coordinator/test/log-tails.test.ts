import { PassThrough } from 'node:stream';
import { type CoordinatorMessage, ROUTES, type SubmitterEvent, SubmitterClient, type WatchEvent } from '@rbtk/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { timeOrderedId } from '../src/auth/secrets.js';
import { createLogger } from '../src/index.js';
import { assignTo, started } from '../src/jobs/decisions.js';
import { JobService } from '../src/jobs/job-service.js';
import { JobWatch } from '../src/jobs/job-watch.js';
import { RunnerJobs } from '../src/jobs/runner-jobs.js';
import { eventually, sleep } from './helpers.js';
import { jobsFixture } from './jobs-helpers.js';
import { SHELL_SPEC, type StoreWithPool, storeWithPool } from './store-helpers.js';

/** A watch through the real submitter client, as `rbtk job logs --follow` runs it: every event until it ends. */
function follow(client: SubmitterClient, jobId: string) {
  const events: WatchEvent[] = [];
  let ended = false;
  const done = (async () => {
    for await (const e of client.watch(jobId)) events.push(e);
    ended = true;
    return events;
  })();
  return { events, done, ended: () => ended };
}

const textOf = (events: (WatchEvent | SubmitterEvent)[]) => events.map((e) => (e.type === 'log' ? e.data : '')).join('');
const statesOf = (events: (WatchEvent | SubmitterEvent)[]) => events.flatMap((e) => (e.type === 'job' ? [e.job.state] : []));

describe('the log an attempt sends after the coordinator ended it', () => {
  const { start, runner, submit, tc } = jobsFixture();
  const clients: SubmitterClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
  });
  const connect = async () => {
    const c = await SubmitterClient.connect({ url: tc().url, token: tc().adminToken });
    clients.push(c);
    return c;
  };

  it('reaches followers after a timeout backstop, before the terminal state; each byte once, in order', async () => {
    let clock = Date.now();
    await start({ now: () => clock });
    const r = await runner('tail');
    const id = await submit('tail', { timeout: '1s' });
    const a = await r.take();
    r.started(a);
    await r.log(a, 0, 'before\n');

    // Watching since it ran.
    const early = follow(await connect(), id);
    await eventually(async () => textOf(early.events) === 'before\n');
    clock += 32_000;
    expect(await r.next('cancel')).toMatchObject({ jobId: id, attempt: 1, reason: 'timed_out' });
    expect((await tc().api('GET', ROUTES.job(id))).body).toMatchObject({ state: 'timed_out', logBytes: 7 });

    // Watching only since it ended: the log so far, and it too waits for the rest.
    const late = follow(await connect(), id);
    await eventually(async () => textOf(late.events) === 'before\n');
    await sleep(100);
    expect([early.ended(), late.ended()]).toEqual([false, false]);
    expect(statesOf(early.events)).toEqual(['running']);
    expect(statesOf(late.events)).toEqual([]);

    // The runner stops the job and flushes what it wrote meanwhile: stored (same attempt, same runner), then its
    // result, acknowledged (the job's own attempt, settled already) but changing nothing.
    expect(await r.log(a, 7, 'stopping\n')).toMatchObject({ offset: 16 });
    expect(await r.log(a, 16, 'bye\n', 'stderr')).toMatchObject({ offset: 20 });
    expect(await r.result(a, 'cancelled', null, 20)).toMatchObject({ accepted: true });

    for (const w of [await early.done, await late.done]) {
      expect(textOf(w)).toBe('before\nstopping\nbye\n');
      expect(w.at(-1)).toMatchObject({ type: 'job', job: { state: 'timed_out', logBytes: 20 } });
    }
    expect(statesOf(early.events)).toEqual(['running', 'timed_out']);
    expect(statesOf(late.events)).toEqual(['timed_out']);
    const offsets = early.events.flatMap((e) => (e.type === 'log' ? [e.offset] : []));
    expect(offsets).toEqual([0, 7, 16]);

    // REST has every byte, and a watch from now on ends at once with all of it.
    const rest = await tc().api('GET', `${ROUTES.jobLogs(id)}?offset=0`);
    expect(rest.body.map((c: { data: string }) => c.data).join('')).toBe('before\nstopping\nbye\n');
    const after = follow(await connect(), id);
    expect(textOf(await after.done)).toBe('before\nstopping\nbye\n');
    expect(statesOf(after.events)).toEqual(['timed_out']);
  });

  it("ends a runner's own end of a job at once, as before: no tail to wait for", async () => {
    await start();
    const r = await runner('own');
    const id = await submit('own');
    const a = await r.take();
    r.started(a);
    const w = follow(await connect(), id);
    await eventually(async () => statesOf(w.events).includes('running'));
    await r.log(a, 0, 'all\n');
    await r.result(a, 'succeeded', 0, 4);
    const seen = await w.done;
    expect(textOf(seen)).toBe('all\n');
    expect(statesOf(seen)).toEqual(['running', 'succeeded']);
  });
});

describe('a log tail with no result from the runner', () => {
  let fixture: StoreWithPool;
  let service: JobService;
  let clock = 1_000_000;
  const sent: CoordinatorMessage[] = [];

  beforeEach(() => {
    fixture = storeWithPool();
    const log = createLogger({ level: 'silent', destination: new PassThrough(), pretty: false });
    service = new JobService({ store: fixture.store, log, now: () => clock, acceptTimeoutMs: 10_000, logTailMs: 150 });
    // r1 as a connected runner of the pool, holding the job below.
    service.index.add({
      id: 'r1', poolId: fixture.poolId, status: 'ONLINE', executors: new Set(['shell']), labels: {}, airgapped: false, maxJobs: 1,
      gpus: [], inFlight: new Map(), stopping: new Map(), restingUntil: 0, refusals: 0, owner: {},
      send: (m) => sent.push(m),
    });
  });
  afterEach(async () => {
    service.stop();
    await fixture.close();
    sent.length = 0;
  });

  /** A job running on r1, with `first` logged. */
  async function running(first: string, retries = 0) {
    const id = timeOrderedId();
    const spec = { ...SHELL_SPEC, retries };
    await fixture.store.jobs.submit({ id, project: 'default', poolId: fixture.poolId, poolName: 'p', spec, timeoutMs: 3_600_000, createdAt: clock });
    await service.apply([{ jobId: id, decide: assignTo('r1', clock) }]);
    service.index.get('r1')!.inFlight.set(id, { attempt: 1, gpus: [] });
    await service.apply([{ jobId: id, decide: started('r1', 1, clock) }]);
    const r1 = new RunnerJobs(service, 'r1', (m) => sent.push(m));
    await r1.onLog({ type: 'log', jobId: id, attempt: 1, offset: 0, stream: 'stdout', data: first });
    return { id, r1 };
  }

  function watch(jobId: string) {
    const events: SubmitterEvent[] = [];
    let ended = false;
    const w = new JobWatch(service, jobId, 0, undefined, (e) => events.push(e), () => (ended = true));
    return { events, ended: () => ended, started: w.start() };
  }

  it('streams what comes within the tail window, then sends the terminal state and ends', async () => {
    const { id, r1 } = await running('one ');
    const w = watch(id);
    await w.started;
    clock += 3_600_000 + 31_000;
    expect(await service.expireOverdue()).toHaveLength(1);
    expect(service.tails.isOpen(id, 1)).toBe(true);
    await r1.onLog({ type: 'log', jobId: id, attempt: 1, offset: 4, stream: 'stdout', data: 'two' });
    expect(w.ended()).toBe(false);
    await eventually(async () => w.ended());
    expect(textOf(w.events)).toBe('one two');
    expect(w.events.at(-1)).toMatchObject({ type: 'job', job: { state: 'timed_out', logBytes: 7 } });
    // Past the window the store still takes the attempt's bytes (REST shows them); watches no longer wait.
    await r1.onLog({ type: 'log', jobId: id, attempt: 1, offset: 7, stream: 'stdout', data: ' three' });
    expect((await fixture.store.jobs.logs(id, 1, 0)).map((c) => c.data).join('')).toBe('one two three');
    const again = watch(id);
    await again.started;
    expect(again.ended()).toBe(true);
    expect(textOf(again.events)).toBe('one two three');
  });

  it('opens no tail for a requeue: the old attempt\'s late bytes are refused, never in the next attempt\'s log', async () => {
    const { id, r1 } = await running('first try\n', 1);
    const w = watch(id);
    await w.started;
    const [t] = await service.runnerGone('r1', 'runner_lost');
    expect(t?.after).toMatchObject({ state: 'queued', attempt: 1, runnerId: null });
    expect(service.tails.isOpen(id, 1)).toBe(false);
    // Acknowledged (the runner frees its spool) and dropped: the attempt is no longer the runner's.
    sent.length = 0;
    await r1.onLog({ type: 'log', jobId: id, attempt: 1, offset: 10, stream: 'stdout', data: 'late\n' });
    expect(sent).toEqual([{ type: 'log_ack', jobId: id, attempt: 1, offset: 15 }]);
    await service.apply([{ jobId: id, decide: assignTo('r1', clock) }]);
    await r1.onLog({ type: 'log', jobId: id, attempt: 2, offset: 0, stream: 'stdout', data: 'second\n' });
    expect(textOf(w.events)).toBe('first try\nsecond\n');
    expect((await fixture.store.jobs.logs(id, 1, 0)).map((c) => c.data)).toEqual(['first try\n']);
    expect(w.ended()).toBe(false);
  });

  it("closes only on its own runner's result; closeAllBut (a hello) closes the attempts the runner no longer holds", async () => {
    const { id } = await running('x');
    clock += 3_600_000 + 31_000;
    await service.expireOverdue();
    const other = new RunnerJobs(service, 'r2', () => undefined);
    await other.onResult({ type: 'result', jobId: id, attempt: 1, outcome: 'succeeded', exitCode: 0, logBytes: 1 });
    expect(service.tails.isOpen(id, 1)).toBe(true);
    service.tails.closeAllBut('r1', new Set());
    expect(service.tails.isOpen(id, 1)).toBe(false);
  });
});
