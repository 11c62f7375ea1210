import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { LogCursor, RbtkError, SubmitterClient, backoffDelay, submitterSocketUrl, type WatchEvent } from '../src/index.js';
import { parseSubmitterRequest, type SubmitterRequest } from '../src/job-messages.js';
import type { Job, JobState } from '../src/schemas/job.js';

/*
 * The submitter client against a real `ws` server on port 0 that speaks the submitter
 * frames. Each test scripts what the server answers; the server records what it got.
 */

const TOKEN = 'rbtk_api_abcdefgh12345678_secretsecretsecretsecretsecretsecret';

function job(state: JobState, extra: Partial<Job> = {}): Job {
  return {
    id: 'job1',
    project: 'default',
    pool: 'build',
    state,
    spec: { pool: 'build', requires: { labels: {} }, executor: { type: 'shell', command: ['true'], env: {} }, timeout: '1h', retries: 0 },
    attempt: 1,
    runnerId: state === 'queued' ? null : 'runner1',
    exitCode: state === 'succeeded' ? 0 : null,
    reason: null,
    logBytes: 0,
    createdAt: '2025-01-01T00:00:00Z',
    startedAt: null,
    finishedAt: null,
    ...extra,
  };
}

interface Conn {
  ws: WebSocket;
  headers: IncomingHttpHeaders;
  url: string;
  send: (frame: object) => void;
}

type Handler = (conn: Conn, req: SubmitterRequest, index: number) => void;

class FakeJobsServer {
  readonly received: SubmitterRequest[] = [];
  readonly conns: Conn[] = [];
  handler: Handler = () => undefined;
  /** Answer the upgrade with this status and error body instead of accepting it. */
  refuse: { status: number; code: string; message: string } | undefined;
  private constructor(
    readonly server: Server,
    private readonly wss: WebSocketServer,
  ) {}

  static async start(): Promise<FakeJobsServer> {
    const server = createServer((_req, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ noServer: true });
    const fake = new FakeJobsServer(server, wss);
    server.on('upgrade', (req, socket, head) => {
      if (fake.refuse) {
        const body = JSON.stringify({ error: { code: fake.refuse.code, message: fake.refuse.message } });
        socket.end(`HTTP/1.1 ${fake.refuse.status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        const conn: Conn = { ws, headers: req.headers, url: req.url ?? '', send: (f) => ws.send(JSON.stringify(f)) };
        fake.conns.push(conn);
        ws.on('message', (data: Buffer) => {
          const parsed = parseSubmitterRequest(data.toString());
          if (!parsed.ok) throw new Error(`client sent an invalid frame: ${parsed.error}`);
          fake.received.push(parsed.message);
          fake.handler(conn, parsed.message, fake.received.length - 1);
        });
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.ws.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }
}

let fake: FakeJobsServer;
let client: SubmitterClient | undefined;

beforeEach(async () => {
  fake = await FakeJobsServer.start();
});

afterEach(async () => {
  await client?.close();
  client = undefined;
  await fake.stop();
});

const connect = async (extra: { project?: string } = {}) =>
  (client = await SubmitterClient.connect({ url: fake.url, token: TOKEN, reconnect: { initialDelayMs: 10, maxDelayMs: 50 }, ...extra }));

async function collect(events: AsyncIterable<WatchEvent>): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

const logs = (events: WatchEvent[]) => events.filter((e) => e.type === 'log');
const text = (events: WatchEvent[]) => logs(events).map((e) => e.data).join('');

describe('SubmitterClient.connect', () => {
  it('sends the token, the protocol version and the project on the upgrade', async () => {
    await connect({ project: 'ml' });
    const [conn] = fake.conns;
    expect(conn?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(conn?.headers['rbtk-protocol-version']).toBe('1');
    expect(conn?.url).toBe('/v1/jobs/ws?project=ml');
  });

  it('rejects with the coordinator\'s code and status when the upgrade is refused', async () => {
    fake.refuse = { status: 401, code: 'token_unknown', message: 'API token is unknown' };
    const err = await SubmitterClient.connect({ url: fake.url, token: TOKEN }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RbtkError);
    expect(err).toMatchObject({ code: 'token_unknown', status: 401, message: 'API token is unknown' });
  });

  it('says "unavailable" when nothing listens', async () => {
    const url = fake.url;
    await fake.stop();
    fake = await FakeJobsServer.start(); // afterEach stops this one
    const err = await SubmitterClient.connect({ url: url, token: TOKEN }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'unavailable', status: 0 });
    expect((err as Error).message).toMatch(/cannot reach the coordinator/);
  });

  it('keeps a path prefix and maps http(s) to ws(s)', () => {
    expect(submitterSocketUrl('https://example.com/rbtk/').href).toBe('wss://example.com/rbtk/v1/jobs/ws');
    expect(() => submitterSocketUrl('ftp://x')).toThrow(RbtkError);
  });
});

describe('requests', () => {
  it('submits and answers the job and whether it was created', async () => {
    fake.handler = (c, req) => {
      if (req.type === 'submit') c.send({ type: 'submitted', reqId: req.reqId, job: job('queued'), created: false });
    };
    await connect();
    const res = await client!.submit({ pool: 'build', executor: { type: 'shell', command: ['true'] } });
    expect(res).toMatchObject({ created: false, job: { id: 'job1', state: 'queued' } });
    expect(fake.received[0]).toMatchObject({ type: 'submit', spec: { pool: 'build', timeout: '1h' } });
  });

  it('matches answers to requests by reqId, whatever their order', async () => {
    const held: { c: Conn; reqId: string; n: number }[] = [];
    fake.handler = (c, req, n) => {
      held.push({ c, reqId: req.reqId, n });
      if (held.length === 2) {
        for (const h of held.reverse()) h.c.send({ type: 'submitted', reqId: h.reqId, job: job('queued', { id: `job${h.n}` }), created: true });
      }
    };
    await connect();
    const spec = { pool: 'build', executor: { type: 'shell' as const, command: ['true'] } };
    const [a, b] = await Promise.all([client!.submit(spec), client!.submit(spec)]);
    expect([a.job.id, b.job.id]).toEqual(['job0', 'job1']);
  });

  it('rejects with RbtkError(code, message) on an error answer', async () => {
    fake.handler = (c, req) => c.send({ type: 'error', reqId: req.reqId, code: 'pool_not_found', message: 'pool "x" does not exist in project "default"' });
    await connect();
    const err = await client!.submit({ pool: 'x', executor: { type: 'shell', command: ['true'] } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RbtkError);
    expect(err).toMatchObject({ code: 'pool_not_found', status: 404, message: 'pool "x" does not exist in project "default"' });
  });

  it('refuses an invalid spec before sending it', async () => {
    await connect();
    const err = await client!.submit({ executor: { type: 'shell', command: ['true'] } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'bad_request' });
    expect((err as Error).message).toMatch(/pool.*selector/);
    expect(fake.received).toEqual([]);
  });

  it('cancels with an ack', async () => {
    fake.handler = (c, req) => c.send({ type: 'ack', reqId: req.reqId });
    await connect();
    await client!.cancel('job1');
    expect(fake.received[0]).toMatchObject({ type: 'cancel', jobId: 'job1' });
  });

  it('fails a request whose connection drops before the answer', async () => {
    fake.handler = (c) => c.ws.terminate();
    await connect();
    await expect(client!.cancel('job1')).rejects.toMatchObject({ code: 'unavailable' });
  });
});

describe('watch', () => {
  it('delivers the state, the log in order, and ends after the terminal event', async () => {
    fake.handler = (c, req) => {
      if (req.type !== 'watch') return;
      c.send({ type: 'ack', reqId: req.reqId });
      c.send({ type: 'job', job: job('running') });
      c.send({ type: 'log', jobId: 'job1', offset: 0, stream: 'stdout', data: 'out\n' });
      c.send({ type: 'log', jobId: 'job1', offset: 4, stream: 'stderr', data: 'err\n' });
      c.send({ type: 'job', job: job('failed', { exitCode: 3 }) });
    };
    await connect();
    const events = await collect(client!.watch('job1'));
    expect(events.map((e) => (e.type === 'job' ? e.job.state : `${e.stream}:${e.data}`))).toEqual(['running', 'stdout:out\n', 'stderr:err\n', 'failed']);
  });

  it('a watch of an ended job gets the state first, then the whole log', async () => {
    fake.handler = (c, req) => {
      c.send({ type: 'ack', reqId: req.reqId });
      if (req.type !== 'watch') return;
      c.send({ type: 'job', job: job('succeeded', { logBytes: 6 }) });
      c.send({ type: 'log', jobId: 'job1', offset: 0, stream: 'stdout', data: 'abc' });
      c.send({ type: 'log', jobId: 'job1', offset: 3, stream: 'stdout', data: 'def' });
    };
    await connect();
    const events = await collect(client!.watch('job1'));
    expect(events[0]).toMatchObject({ type: 'job', job: { state: 'succeeded' } });
    expect(text(events)).toBe('abcdef');
  });

  it('ends the watch of an ended job when a later answer shows the backlog was all sent', async () => {
    fake.handler = (c, req) => {
      c.send({ type: 'ack', reqId: req.reqId });
      if (req.type !== 'watch') return;
      // logBytes says 9, but only 3 bytes are stored: the ack of the next request ends the watch.
      c.send({ type: 'job', job: job('failed', { logBytes: 9 }) });
      c.send({ type: 'log', jobId: 'job1', offset: 0, stream: 'stderr', data: 'abc' });
    };
    await connect();
    const events = await collect(client!.watch('job1'));
    expect(text(events)).toBe('abc');
    expect(fake.received.map((r) => r.type)).toEqual(['watch', 'unwatch']);
  });

  it('ends with the coordinator\'s error when the watch is refused', async () => {
    fake.handler = (c, req) => c.send({ type: 'error', reqId: req.reqId, code: 'not_found', message: 'job "nope" not found' });
    await connect();
    await expect(collect(client!.watch('nope'))).rejects.toMatchObject({ code: 'not_found', status: 404 });
  });

  it('fails on a frame that breaks the contract, and does not reconnect', async () => {
    fake.handler = (c) => c.send({ type: 'log', jobId: 'job1', offset: -1, stream: 'stdout', data: 'x' });
    await connect();
    const err = await collect(client!.watch('job1')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'internal' });
    expect((err as Error).message).toMatch(/invalid frame.*offset/s);
    await new Promise((r) => setTimeout(r, 100));
    expect(fake.conns).toHaveLength(1);
  });

  it('reconnects after a dropped socket and delivers every byte once, in order', async () => {
    // Multi-byte characters, so offsets that count bytes and not characters matter.
    const log = Array.from({ length: 40 }, (_, i) => `line ${i} ✓ é\n`).join('');
    const bytes = Buffer.from(log);
    const chunkAt = (offset: number, size: number) => {
      // Cut at character boundaries, as the coordinator does.
      let end = Math.min(bytes.length, offset + size);
      while (end < bytes.length && (bytes[end]! & 0xc0) === 0x80) end++;
      return { offset, data: bytes.subarray(offset, end).toString('utf8'), end };
    };
    const fromOffsets: number[] = [];
    const attempts: (number | undefined)[] = [];
    fake.handler = (c, req, _n) => {
      if (req.type !== 'watch') return;
      fromOffsets.push(req.fromOffset);
      attempts.push(req.attempt);
      c.send({ type: 'ack', reqId: req.reqId });
      c.send({ type: 'job', job: job('running') });
      const first = fromOffsets.length === 1;
      // The second server rewinds a little to check that the client drops bytes it already has.
      let offset = first ? req.fromOffset : Math.max(0, req.fromOffset - 7);
      while (offset < bytes.length) {
        const chunk = chunkAt(offset, 13);
        c.send({ type: 'log', jobId: 'job1', offset: chunk.offset, stream: 'stdout', data: chunk.data });
        offset = chunk.end;
        if (first && offset > bytes.length / 2) {
          c.ws.terminate(); // dropped mid-log
          return;
        }
      }
      c.send({ type: 'job', job: job('succeeded', { logBytes: bytes.length }) });
    };
    await connect();
    const events = await collect(client!.watch('job1'));
    expect(fake.conns).toHaveLength(2);
    expect(fromOffsets[0]).toBe(0);
    expect(fromOffsets[1]).toBeGreaterThan(bytes.length / 2);
    // The resume names the attempt its offset counts in (a retry meanwhile would start over).
    expect(attempts).toEqual([undefined, job('running').attempt]);
    expect(text(events)).toBe(log);
    let expected = 0;
    for (const e of logs(events)) {
      expect(e.offset).toBe(expected);
      expected += Buffer.byteLength(e.data);
    }
    expect(events.filter((e) => e.type === 'job').map((e) => e.job.state)).toEqual(['running', 'succeeded']);
  });

  it('resumes from fromOffset and watches again from the cursor after a gap', async () => {
    fake.handler = (c, req) => {
      if (req.type === 'unwatch') return c.send({ type: 'ack', reqId: req.reqId });
      if (req.type !== 'watch') return;
      c.send({ type: 'ack', reqId: req.reqId });
      c.send({ type: 'job', job: job('running') });
      if (req.fromOffset === 3) {
        c.send({ type: 'log', jobId: 'job1', offset: 3, stream: 'stdout', data: 'def' });
        c.send({ type: 'log', jobId: 'job1', offset: 9, stream: 'stdout', data: 'jkl' }); // 6..9 missing
      } else {
        c.send({ type: 'log', jobId: 'job1', offset: 6, stream: 'stdout', data: 'ghijkl' });
        c.send({ type: 'job', job: job('succeeded') });
      }
    };
    await connect();
    const events = await collect(client!.watch('job1', { fromOffset: 3 }));
    expect(text(events)).toBe('defghijkl');
    expect(fake.received.map((r) => r.type)).toEqual(['watch', 'unwatch', 'watch']);
    expect(fake.received[2]).toMatchObject({ fromOffset: 6 });
  });

  it('stops watching when the consumer breaks out', async () => {
    fake.handler = (c, req) => {
      c.send({ type: 'ack', reqId: req.reqId });
      if (req.type === 'watch') c.send({ type: 'job', job: job('running') });
    };
    await connect();
    for await (const e of client!.watch('job1')) {
      expect(e.type).toBe('job');
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(fake.received.map((r) => r.type)).toEqual(['watch', 'unwatch']);
  });

  it('gives up after a refusal on reconnect', async () => {
    fake.handler = (c, req) => {
      c.send({ type: 'job', job: job('running') });
      fake.refuse = { status: 401, code: 'token_unknown', message: 'API token is unknown' };
      c.ws.terminate();
      void req;
    };
    await connect();
    await expect(collect(client!.watch('job1'))).rejects.toMatchObject({ code: 'token_unknown' });
  });
});

describe('helpers', () => {
  it('backs off exponentially with jitter, up to the cap', () => {
    const opts = { initialDelayMs: 100, maxDelayMs: 1_000 };
    expect(backoffDelay(0, opts, () => 0)).toBe(50);
    expect(backoffDelay(0, opts, () => 1)).toBe(100);
    expect(backoffDelay(3, opts, () => 1)).toBe(800);
    expect(backoffDelay(20, opts, () => 1)).toBe(1_000);
  });

  it('restarts the cursor at 0 for a new attempt', () => {
    const cursor = new LogCursor();
    cursor.onAttempt(1);
    expect(cursor.onLog({ type: 'log', jobId: 'j', offset: 0, stream: 'stdout', data: 'abc' }).kind).toBe('deliver');
    cursor.onAttempt(2);
    expect(cursor.next).toBe(0);
    expect(cursor.onLog({ type: 'log', jobId: 'j', offset: 0, stream: 'stdout', data: 'x' })).toMatchObject({ kind: 'deliver' });
  });
});
