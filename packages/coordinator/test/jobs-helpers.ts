import {
  type CoordinatorMessage,
  type GpuInventory,
  type HeldAttempt,
  type Hello,
  type JobSpecInput,
  parseCoordinatorMessage,
  parseSubmitterEvent,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_HEADER,
  ROUTES,
  type SubmitterEvent,
} from '@rbtk/protocol';
import { afterEach, expect } from 'vitest';
import WebSocket from 'ws';
import { HELLO, TestCoordinator } from './helpers.js';

/** Messages in arrival order; waitFor takes the first that matches, wherever it is in the queue. */
class Inbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: { match: (m: T) => boolean; resolve: (m: T) => void }[] = [];

  push(m: T): void {
    const i = this.waiters.findIndex((w) => w.match(m));
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
    else this.items.push(m);
  }

  waitFor(match: (m: T) => boolean, timeoutMs = 5000, what = 'message'): Promise<T> {
    const i = this.items.findIndex(match);
    if (i >= 0) return Promise.resolve(this.items.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (m: T) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no ${what} in ${timeoutMs} ms; unread: ${JSON.stringify(this.items)}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Everything unread of a kind, taken. */
  drain(match: (m: T) => boolean): T[] {
    const out = this.items.filter(match);
    for (const m of out) this.items.splice(this.items.indexOf(m), 1);
    return out;
  }
}

type Msg<K extends CoordinatorMessage['type']> = Extract<CoordinatorMessage, { type: K }>;

export interface SimRunnerOptions {
  name?: string;
  maxJobs?: number;
  executors?: ('docker' | 'shell')[];
  labels?: Record<string, string>;
  airgapped?: boolean;
  gpus?: GpuInventory;
}

/** A simulated runner: registered through the real endpoint, speaking the real frames over a real socket. */
export class SimRunner {
  readonly inbox = new Inbox<CoordinatorMessage>();
  ws!: WebSocket;
  closed!: Promise<number>;

  private heartbeats: NodeJS.Timeout | undefined;

  private constructor(
    /** Mutable: a restarted coordinator listens on another port. */
    public tc: TestCoordinator,
    readonly runnerId: string,
    readonly token: string,
    readonly opts: SimRunnerOptions,
  ) {}

  /** Registers (pool created if missing), connects and says hello. */
  static async start(tc: TestCoordinator, pool: string, opts: SimRunnerOptions = {}): Promise<SimRunner> {
    const pools = await tc.api('GET', ROUTES.pools);
    if (!pools.body.some((p: { name: string }) => p.name === pool)) await tc.createPool(pool);
    const reg = await tc.mintRegistrationToken(pool);
    const res = await tc.register(reg, { name: opts.name ?? 'sim', labels: opts.labels ?? {}, airgapped: opts.airgapped ?? false });
    if (res.status !== 201) throw new Error(`register: ${res.status} ${JSON.stringify(res.body)}`);
    const runner = new SimRunner(tc, res.body.runnerId, res.body.token, opts);
    await runner.connect();
    return runner;
  }

  hello(held: HeldAttempt[] = []): Hello {
    return {
      ...HELLO,
      capabilities: {
        executors: this.opts.executors ?? ['shell'],
        maxJobs: this.opts.maxJobs ?? 1,
        labels: this.opts.labels ?? {},
        airgapped: this.opts.airgapped ?? false,
        ...(this.opts.gpus ? { gpus: this.opts.gpus } : {}),
      },
      held,
    };
  }

  async connect(held: HeldAttempt[] = []): Promise<void> {
    const ws = new WebSocket(this.tc.wsUrl, {
      headers: { authorization: `Bearer ${this.token}`, [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) },
    });
    this.ws = ws;
    ws.on('message', (data) => {
      const parsed = parseCoordinatorMessage(data.toString());
      if (!parsed.ok) throw new Error(`coordinator sent an invalid frame: ${parsed.error}`);
      this.inbox.push(parsed.message);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    this.send(this.hello(held));
    await this.next('welcome');
  }

  send(m: unknown): void {
    this.ws.send(JSON.stringify(m));
  }

  next<K extends CoordinatorMessage['type']>(type: K, match: (m: Msg<K>) => boolean = () => true, timeoutMs = 5000): Promise<Msg<K>> {
    return this.inbox.waitFor((m) => m.type === type && match(m as Msg<K>), timeoutMs, type) as Promise<Msg<K>>;
  }

  /** Waits for an assignment and accepts it. */
  async take(timeoutMs = 5000): Promise<Msg<'assign'>> {
    const a = await this.next('assign', () => true, timeoutMs);
    this.send({ type: 'accept', jobId: a.jobId, attempt: a.attempt });
    return a;
  }

  started(a: { jobId: string; attempt: number }): void {
    this.send({ type: 'started', jobId: a.jobId, attempt: a.attempt });
  }

  async log(a: { jobId: string; attempt: number }, offset: number, data: string, stream: 'stdout' | 'stderr' = 'stdout') {
    this.send({ type: 'log', jobId: a.jobId, attempt: a.attempt, offset, stream, data });
    return this.next('log_ack', (m) => m.jobId === a.jobId && m.attempt === a.attempt);
  }

  async result(
    a: { jobId: string; attempt: number },
    outcome: 'succeeded' | 'failed' | 'cancelled' | 'timed_out' = 'succeeded',
    exitCode: number | null = 0,
    logBytes = 0,
  ) {
    this.send({ type: 'result', jobId: a.jobId, attempt: a.attempt, outcome, exitCode, logBytes });
    return this.next('result_ack', (m) => m.jobId === a.jobId && m.attempt === a.attempt);
  }

  /** Runs an assignment to success: started, result. */
  async complete(a: { jobId: string; attempt: number }) {
    this.started(a);
    return this.result(a);
  }

  /** Heartbeats every ms until terminate(), so liveness keeps the runner ONLINE. */
  keepAlive(ms = 50): void {
    let seq = 0;
    clearInterval(this.heartbeats);
    this.heartbeats = setInterval(() => {
      if (this.ws.readyState === WebSocket.OPEN) this.send({ type: 'heartbeat', seq: seq++ });
    }, ms);
  }

  terminate(): void {
    clearInterval(this.heartbeats);
    this.ws.terminate();
  }
}

/** A submitter WebSocket on /v1/jobs/ws. */
export class SubmitterSocket {
  readonly inbox = new Inbox<SubmitterEvent>();
  readonly raw: string[] = [];
  closed!: Promise<number>;
  private reqs = 0;

  private constructor(readonly ws: WebSocket) {}

  static async open(tc: TestCoordinator, token = tc.adminToken, headers: Record<string, string> = {}): Promise<SubmitterSocket> {
    const ws = new WebSocket(tc.url.replace(/^http/, 'ws') + ROUTES.jobsSocket, {
      headers: { authorization: `Bearer ${token}`, ...headers },
    });
    const s = new SubmitterSocket(ws);
    ws.on('message', (data) => {
      const parsed = parseSubmitterEvent(data.toString());
      if (!parsed.ok) throw new Error(`coordinator sent an invalid submitter frame: ${parsed.error}`);
      s.inbox.push(parsed.message);
    });
    s.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    return s;
  }

  request(body: Record<string, unknown>): string {
    const reqId = `r${++this.reqs}`;
    this.ws.send(JSON.stringify({ ...body, reqId }));
    return reqId;
  }

  next(match: (e: SubmitterEvent) => boolean, timeoutMs = 5000): Promise<SubmitterEvent> {
    return this.inbox.waitFor(match, timeoutMs, 'submitter event');
  }

  async submit(spec: JobSpecInput) {
    const reqId = this.request({ type: 'submit', spec });
    return this.next((e) => 'reqId' in e && e.reqId === reqId);
  }

  close(): void {
    this.ws.close();
  }
}

export const shellJob = (pool: string, extra: Partial<JobSpecInput> = {}): JobSpecInput => ({
  pool,
  executor: { type: 'shell', command: ['echo', 'hi'] },
  ...extra,
});

/**
 * One coordinator and its simulated runners per test, all stopped after each
 * (call inside a describe): start() it, add runner()s, submit() a shell job
 * (201 expected; its id) and read a job(). tc() is the running coordinator.
 */
export function jobsFixture() {
  let current: TestCoordinator | undefined;
  const runners: SimRunner[] = [];
  afterEach(async () => {
    for (const r of runners.splice(0)) r.terminate();
    await current?.stop();
    current = undefined;
  });
  const tc = (): TestCoordinator => {
    if (!current) throw new Error('start() the coordinator first');
    return current;
  };
  return {
    tc,
    /** Runners the test started itself, terminated after it like the fixture's own. */
    runners,
    start: async (opts: Parameters<typeof TestCoordinator.start>[0] = {}) => (current = await TestCoordinator.start(opts)),
    runner: async (pool: string, opts: Parameters<typeof SimRunner.start>[2] = {}) => {
      const r = await SimRunner.start(tc(), pool, opts);
      runners.push(r);
      return r;
    },
    submit: async (pool: string, extra = {}) => {
      const res = await tc().api('POST', ROUTES.jobs, { body: shellJob(pool, extra) });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body.id as string;
    },
    job: async (id: string) => (await tc().api('GET', ROUTES.job(id))).body,
  };
}
