import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { CloseCode, ErrorCode, parseSubmitterEvent, ROUTES } from '@rbtk/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createLogger } from '../src/index.js';
import { TestCoordinator } from './helpers.js';
import { shellJob, SimRunner, SubmitterSocket } from './jobs-helpers.js';

/** The coordinator's threshold, lowered from 32 MiB so that a few MiB of log reach it (the kernel's socket buffers hold the rest). */
const SLOW_BYTES = 1024 * 1024;
const CHUNK_BYTES = 256 * 1024;
/** A bound on the log sent waiting for the close: far past the threshold plus any loopback socket buffers. */
const MAX_LOG_BYTES = 48 * 1024 * 1024;

/** A submitter socket whose TCP socket can be paused: it then reads nothing, as a stuck client would. */
async function openPausable(tc: TestCoordinator) {
  const ws = new WebSocket(tc.url.replace(/^http/, 'ws') + ROUTES.jobsSocket, { headers: { authorization: `Bearer ${tc.adminToken}` } });
  let socket: Socket | undefined;
  ws.once('upgrade', (res) => (socket = res.socket as Socket));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  const events: ReturnType<typeof parseSubmitterEvent>[] = [];
  ws.on('message', (data) => events.push(parseSubmitterEvent(data.toString())));
  await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  return { ws, socket: socket!, closed, events };
}

describe('a submitter that reads its watch too slowly', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('is closed with 1013 once its socket holds too much, while the coordinator and other clients go on', async () => {
    const lines: string[] = [];
    const logs = new PassThrough();
    logs.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    const tc = await TestCoordinator.start({
      submitterLimits: { slowWatcherBytes: SLOW_BYTES },
      logger: createLogger({ level: 'warn', destination: logs, pretty: false }),
    });
    cleanups.push(() => tc.stop());
    const runner = await SimRunner.start(tc, 'w');
    cleanups.push(() => runner.terminate());

    const good = await SubmitterSocket.open(tc);
    cleanups.push(() => good.ws.terminate());
    const submitted = await good.submit(shellJob('w'));
    const jobId = submitted.type === 'submitted' ? submitted.job.id : '';
    const a = await runner.take();
    runner.started(a);

    const slow = await openPausable(tc);
    cleanups.push(() => slow.ws.terminate());
    for (const s of [good, slow]) s.ws.send(JSON.stringify({ type: 'watch', reqId: 'w', jobId }));
    await good.next((e) => e.type === 'job' && e.job.state === 'running');
    while (!slow.events.some((e) => e.ok && e.message.type === 'job')) await new Promise((r) => setTimeout(r, 5));
    slow.socket.pause();

    // The job writes its log until the coordinator gives up on the stalled watcher.
    const tooSlow = () => lines.some((l) => l.includes('submitter reads too slowly'));
    let sent = '';
    const chunk = async () => {
      const data = String(sent.length / CHUNK_BYTES % 10).repeat(CHUNK_BYTES);
      await runner.log(a, sent.length, data);
      sent += data;
    };
    while (!tooSlow() && sent.length < MAX_LOG_BYTES) await chunk();
    expect(tooSlow(), `no close after ${sent.length} bytes of log`).toBe(true);
    await chunk(); // written after the close: the slow watcher cannot have it
    await runner.result(a, 'succeeded', 0, sent.length);

    // The other watcher has every byte, in order, and the end of the job.
    let text = '';
    for (;;) {
      const e = await good.next((m) => (m.type === 'log' && m.jobId === jobId) || (m.type === 'job' && m.job.id === jobId));
      if (e.type === 'log') {
        expect(e.offset).toBe(text.length);
        text += e.data;
      } else if (e.type === 'job' && e.job.state === 'succeeded') break;
    }
    expect(text.length).toBe(sent.length);
    expect(text === sent).toBe(true);

    // Read again, the slow one finds a gapless start of the log, no end of the job, and the close: 1013.
    slow.socket.resume();
    expect(await slow.closed).toEqual({ code: CloseCode.TryAgainLater, reason: 'reading too slowly: reconnect and resume' });
    let offset = 0;
    for (const e of slow.events) {
      expect(e.ok).toBe(true);
      if (!e.ok) continue;
      if (e.message.type === 'job') expect(e.message.job.state).not.toBe('succeeded');
      if (e.message.type !== 'log') continue;
      expect(e.message.offset).toBe(offset);
      expect(e.message.data === sent.slice(offset, offset + e.message.data.length)).toBe(true);
      offset += e.message.data.length;
    }
    expect(offset).toBeLessThan(sent.length);

    // The coordinator is fine: it answers, and a new client submits and watches.
    expect((await tc.api('GET', '/healthz')).status).toBe(200);
    const next = await SubmitterSocket.open(tc);
    cleanups.push(() => next.ws.terminate());
    const again = await next.submit(shellJob('w'));
    expect(again).toMatchObject({ type: 'submitted', created: true });
    const b = await runner.take();
    expect(b.jobId).toBe(again.type === 'submitted' ? again.job.id : '');
  });
});

describe('what one submitter socket may hold', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A coordinator with a finished job whose log is `bytes` long. */
  async function withLoggedJob(limits: Parameters<typeof TestCoordinator.start>[0], bytes: number) {
    const tc = await TestCoordinator.start(limits);
    cleanups.push(() => tc.stop());
    const runner = await SimRunner.start(tc, 'w');
    cleanups.push(() => runner.terminate());
    const s = await SubmitterSocket.open(tc);
    const submitted = await s.submit(shellJob('w'));
    s.ws.terminate();
    const jobId = submitted.type === 'submitted' ? submitted.job.id : '';
    const a = await runner.take();
    runner.started(a);
    // 64 KiB chunks, as rbtk-runner sends them: a watch reads its backlog 1 MiB (WATCH_PAGE_CHUNKS) at a time.
    const chunk = 64 * 1024;
    for (let sent = 0; sent < bytes; sent += chunk) await runner.log(a, sent, 'x'.repeat(chunk));
    await runner.result(a, 'succeeded', 0, bytes);
    return { tc, jobId };
  }

  const jobCount = async (tc: TestCoordinator) => ((await tc.api('GET', '/v1/jobs?limit=100')).body as unknown[]).length;

  it('reads no further while it has maxPendingRequests in hand, and goes on once they are answered', async () => {
    // A watch of a 24 MiB log to a client that reads nothing stays in hand: its backlog's later pages wait
    // for the socket to drain, and 24 MiB is more than loopback's socket buffers hold.
    const { tc, jobId } = await withLoggedJob({ submitterLimits: { maxPendingRequests: 1 } }, 24 * 1024 * 1024);
    const before = await jobCount(tc);
    const stuck = await openPausable(tc);
    cleanups.push(() => stuck.ws.terminate());
    stuck.socket.pause();
    stuck.ws.send(JSON.stringify({ type: 'watch', reqId: 'w1', jobId }));
    stuck.ws.send(JSON.stringify({ type: 'submit', reqId: 's1', spec: shellJob('w') }));
    await new Promise((r) => setTimeout(r, 500));
    // Without the cap the submit would have been taken and committed by now.
    expect(await jobCount(tc)).toBe(before);
    stuck.socket.resume();
    const deadline = Date.now() + 10_000;
    while (!stuck.events.some((e) => e.ok && e.message.type === 'submitted') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(stuck.events.find((e) => e.ok && e.message.type === 'submitted')).toMatchObject({ ok: true, message: { reqId: 's1', created: true } });
    expect(await jobCount(tc)).toBe(before + 1);
  });

  it('refuses a watch past maxWatches with limit_exceeded and stays open', async () => {
    const { tc } = await withLoggedJob({ submitterLimits: { maxWatches: 2 } }, 64 * 1024);
    const s = await SubmitterSocket.open(tc);
    cleanups.push(() => s.ws.terminate());
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await s.submit(shellJob('w'));
      ids.push(r.type === 'submitted' ? r.job.id : '');
    }
    const watch = async (jobId: string) => {
      const reqId = s.request({ type: 'watch', jobId });
      return s.next((e) => 'reqId' in e && e.reqId === reqId);
    };
    expect(await watch(ids[0]!)).toMatchObject({ type: 'ack' });
    expect(await watch(ids[1]!)).toMatchObject({ type: 'ack' });
    expect(await watch(ids[1]!)).toMatchObject({ type: 'ack' }); // the same job again replaces its watch
    const refused = await watch(ids[2]!);
    expect(refused).toMatchObject({ type: 'error', code: ErrorCode.LimitExceeded });
    expect(refused.type === 'error' && refused.message).toContain('already watches 2 jobs');
    const unwatch = s.request({ type: 'unwatch', jobId: ids[0] });
    expect(await s.next((e) => 'reqId' in e && e.reqId === unwatch)).toMatchObject({ type: 'ack' });
    expect(await watch(ids[2]!)).toMatchObject({ type: 'ack' });
    expect(s.ws.readyState).toBe(WebSocket.OPEN);
  });
});
