import { ROUTES } from '@rbtk/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCoordinator } from './helpers.js';
import { shellJob, SimRunner, SubmitterSocket } from './jobs-helpers.js';

describe('submitter websocket', () => {
  let tc: TestCoordinator;
  let runner: SimRunner;
  const sockets: SubmitterSocket[] = [];
  const open = async (token?: string, headers?: Record<string, string>) => {
    const s = await SubmitterSocket.open(tc, token, headers);
    sockets.push(s);
    return s;
  };

  beforeAll(async () => {
    tc = await TestCoordinator.start();
    runner = await SimRunner.start(tc, 'w', { maxJobs: 4 });
  });
  afterAll(async () => {
    for (const s of sockets) s.ws.terminate();
    runner.terminate();
    await tc.stop();
  });

  /** Submits a job to pool w over `s` and has the runner take and start it. */
  async function running(s: SubmitterSocket, extra: Parameters<typeof shellJob>[1] = {}) {
    const sub = await s.submit(shellJob('w', extra));
    const jobId = sub.type === 'submitted' ? sub.job.id : '';
    const a = await runner.take();
    runner.started(a);
    return { jobId, a };
  }

  /** Everything a watch delivers until its terminal `job` event. */
  async function collect(s: SubmitterSocket, jobId: string) {
    const states: string[] = [];
    let text = '';
    const offsets: number[] = [];
    for (;;) {
      const e = await s.next((m) => (m.type === 'job' && m.job.id === jobId) || (m.type === 'log' && m.jobId === jobId));
      if (e.type === 'log') {
        offsets.push(e.offset);
        text += e.data;
        continue;
      }
      if (e.type !== 'job') continue;
      states.push(e.job.state);
      if (['succeeded', 'failed', 'cancelled', 'timed_out'].includes(e.job.state)) return { states, text, offsets };
    }
  }

  it('submits, then watches from offset 0: state changes and every log byte once, in order, then ends', async () => {
    const s = await open();
    const submitted = await s.submit(shellJob('w'));
    expect(submitted).toMatchObject({ type: 'submitted', reqId: 'r1', created: true, job: { pool: 'w' } });
    const jobId = submitted.type === 'submitted' ? submitted.job.id : '';
    const a = await runner.take();
    runner.started(a);
    await runner.log(a, 0, 'one ');
    // Watch mid-run: the backlog comes first, then live chunks.
    const reqId = s.request({ type: 'watch', jobId, fromOffset: 0 });
    expect(await s.next((e) => e.type === 'ack')).toEqual({ type: 'ack', reqId });
    const done = collect(s, jobId);
    await runner.log(a, 4, 'two ');
    await runner.log(a, 8, 'three', 'stderr');
    await runner.result(a, 'succeeded', 0, 13);
    const seen = await done;
    expect(seen.text).toBe('one two three');
    expect(seen.offsets).toEqual([0, 4, 8]);
    expect(seen.states[0]).toBe('running');
    expect(seen.states.at(-1)).toBe('succeeded');
    // After the terminal event the watch is over: nothing more arrives for it.
    await expect(s.next((e) => e.type === 'job' || e.type === 'log', 200)).rejects.toThrow();
  });

  it('watches a finished job from a middle offset: the rest of the log once, then the terminal state', async () => {
    const s = await open();
    const { jobId, a } = await running(s);
    await runner.log(a, 0, 'abcdef');
    await runner.log(a, 6, 'ghij');
    await runner.result(a, 'succeeded', 0, 10);
    s.request({ type: 'watch', jobId, fromOffset: 3 });
    const events = [];
    for (let i = 0; i < 3; i++) events.push(await s.next((e) => e.type === 'job' || e.type === 'log'));
    expect(events.map((e) => e.type)).toEqual(['job', 'log', 'log']);
    expect(events.slice(1)).toEqual([
      { type: 'log', jobId, offset: 3, stream: 'stdout', data: 'def' },
      { type: 'log', jobId, offset: 6, stream: 'stdout', data: 'ghij' },
    ]);
  });

  /** A finished job's watch: its `job` event first, then its log from the offset, until `bytes` of it came. */
  async function backlog(s: SubmitterSocket, jobId: string, bytes: number) {
    const first = await s.next((m) => m.type === 'job' && m.job.id === jobId);
    let text = '';
    const offsets: number[] = [];
    while (Buffer.byteLength(text) < bytes) {
      const e = await s.next((m) => m.type === 'log' && m.jobId === jobId);
      if (e.type !== 'log') continue;
      offsets.push(e.offset);
      text += e.data;
    }
    return { job: first.type === 'job' ? first.job : undefined, text, offsets };
  }

  it("resumes a watch whose attempt was retried meanwhile from the new attempt's first byte", async () => {
    const s = await open();
    const { jobId, a } = await running(s, { retries: 1 });
    await runner.log(a, 0, 'attempt one wrote this\n');
    await runner.result(a, 'failed', 1, 23);
    const b = await runner.take();
    expect(b.attempt).toBe(2);
    runner.started(b);
    await runner.log(b, 0, 'two\n');
    await runner.result(b, 'succeeded', 0, 4);
    // The watcher was away at byte 23 of attempt 1; attempt 2's whole log is shorter than that.
    s.request({ type: 'watch', jobId, fromOffset: 23, attempt: 1 });
    const seen = await backlog(s, jobId, 4);
    expect(seen.job).toMatchObject({ attempt: 2, state: 'succeeded' });
    expect(seen.text).toBe('two\n');
    expect(seen.offsets).toEqual([0]);
  });

  it('reads a long backlog a page at a time, every chunk once and in order; REST pages it too', async () => {
    const s = await open();
    const { jobId, a } = await running(s);
    const lines = Array.from({ length: 300 }, (_, i) => `line ${String(i).padStart(3, '0')}\n`);
    let offset = 0;
    for (const l of lines) {
      await runner.log(a, offset, l);
      offset += l.length;
    }
    await runner.result(a, 'succeeded', 0, offset);
    s.request({ type: 'watch', jobId, fromOffset: 0 });
    const seen = await backlog(s, jobId, offset);
    expect(seen.text).toBe(lines.join(''));
    expect(seen.offsets).toHaveLength(300);
    const page = await tc.api('GET', `${ROUTES.jobLogs(jobId)}?offset=0`);
    expect(page.body).toHaveLength(128);
    const last = page.body.at(-1);
    const next = await tc.api('GET', `${ROUTES.jobLogs(jobId)}?offset=${last.offset + last.data.length}`);
    expect(next.body[0]).toMatchObject({ offset: last.offset + last.data.length, data: lines[128] });
  });

  it('moves a cut inside a character back to where the character starts', async () => {
    const s = await open();
    const { jobId, a } = await running(s);
    await runner.log(a, 0, 'a😀b'); // bytes: a, 4 of the emoji (1–4), b (5)
    await runner.result(a, 'succeeded', 0, 6);
    const res = await tc.api('GET', `${ROUTES.jobLogs(jobId)}?offset=2`);
    expect(res.body).toEqual([{ jobId, offset: 1, stream: 'stdout', data: '😀b' }]);
    expect((await tc.api('GET', `${ROUTES.jobLogs(jobId)}?offset=0&attempt=2`)).status).toBe(400);
  });

  it('answers request errors with the reqId and keeps the socket open; cancels over the socket', async () => {
    const s = await open();
    const bad = await s.submit(shellJob('missing'));
    expect(bad).toMatchObject({ type: 'error', reqId: 'r1', code: 'pool_not_found' });
    const unknown = s.request({ type: 'watch', jobId: 'nope' });
    expect(await s.next((e) => 'reqId' in e && e.reqId === unknown)).toMatchObject({ type: 'error', code: 'not_found' });
    const busy = await SimRunner.start(tc, 'idle', { maxJobs: 1 });
    try {
      const blocker = await s.submit(shellJob('idle'));
      const queued = await s.submit(shellJob('idle'));
      const queuedId = queued.type === 'submitted' ? queued.job.id : '';
      expect(blocker.type).toBe('submitted');
      const cancel = s.request({ type: 'cancel', jobId: queuedId });
      expect(await s.next((e) => 'reqId' in e && e.reqId === cancel)).toEqual({ type: 'ack', reqId: cancel });
      expect((await tc.api('GET', ROUTES.job(queuedId))).body.state).toBe('cancelled');
    } finally {
      busy.terminate();
    }
  });

  it('closes a malformed frame with error + 4400 while another client keeps working', async () => {
    const bad = await open();
    const good = await open();
    bad.ws.send('{not json');
    expect(await bad.next((e) => e.type === 'error')).toMatchObject({ code: 'malformed_message' });
    expect(await bad.closed).toBe(4400);
    const other = await open();
    other.ws.send(JSON.stringify({ type: 'launch', reqId: 'x' }));
    expect(await other.next((e) => e.type === 'error')).toMatchObject({ code: 'unknown_message' });
    expect(await other.closed).toBe(4400);
    expect((await good.submit(shellJob('w'))).type).toBe('submitted');
  });

  it('needs an API token and refuses a protocol mismatch', async () => {
    await expect(SubmitterSocket.open(tc, 'rbtk_api_xxxxxxxxxxxxxxxx_yyyy')).rejects.toThrow('401');
    await expect(SubmitterSocket.open(tc, tc.adminToken, { 'rbtk-protocol-version': '2' })).rejects.toThrow('426');
    const minted = await tc.api('POST', ROUTES.apiTokens, { body: { role: 'submitter' } });
    const s = await open(minted.body.token, { 'rbtk-protocol-version': '1' });
    expect((await s.submit(shellJob('w'))).type).toBe('submitted');
  });
});
