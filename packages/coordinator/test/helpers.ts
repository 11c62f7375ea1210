import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import {
  type CoordinatorMessage,
  type ErrorBody,
  type Hello,
  parseCoordinatorMessage,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_HEADER,
  type RegisterResponse,
  ROUTES,
} from '@rbtk/protocol';
import WebSocket from 'ws';
import { type Coordinator, type CoordinatorOptions, createLogger, type Logger, type LogLevel, startCoordinator } from '../src/index.js';

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir(prefix = 'rbtk-coord-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Logs stay quiet unless RBTK_TEST_LOG=debug (or another level) is set. */
export const testLogger = () => createLogger({ level: (process.env.RBTK_TEST_LOG as 'debug') ?? 'silent', pretty: false });

/** A JSON-lines logger at `level` whose lines the test reads back, parsed, as they are written. */
export function capturedLogger<L = Record<string, unknown>>(level: LogLevel = 'debug'): { logger: Logger; lines: L[] } {
  const stream = new PassThrough();
  const lines: L[] = [];
  let buf = '';
  stream.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, i)) as L);
      buf = buf.slice(i + 1);
    }
  });
  return { logger: createLogger({ level, destination: stream, pretty: false }), lines };
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
}

export class TestCoordinator {
  private constructor(
    readonly coordinator: Coordinator,
    readonly adminToken: string,
    private readonly cleanupDir: () => void,
  ) {}

  static async start(options: Partial<CoordinatorOptions> = {}): Promise<TestCoordinator> {
    const { dir, cleanup } = tempDir();
    const coordinator = await startCoordinator({
      dataDir: dir,
      host: '127.0.0.1',
      port: 0,
      logger: testLogger(),
      ...options,
    });
    const adminToken = readFileSync(coordinator.adminTokenFile, 'utf8').trim();
    return new TestCoordinator(coordinator, adminToken, cleanup);
  }

  get url(): string {
    return this.coordinator.url;
  }

  get wsUrl(): string {
    return this.url.replace(/^http/, 'ws') + ROUTES.runnerSocket;
  }

  async stop(): Promise<void> {
    await this.coordinator.stop();
    this.cleanupDir();
  }

  /** A REST call; token defaults to the instance admin token, null sends none. */
  async api<T = any>(
    method: string,
    route: string,
    opts: { body?: unknown; rawBody?: string | Buffer; token?: string | null } = {},
  ): Promise<ApiResponse<T>> {
    const token = opts.token === undefined ? this.adminToken : opts.token;
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | Buffer | undefined = opts.rawBody;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(this.url + route, { method, headers, body });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
  }

  async createPool(name: string, extra: Record<string, unknown> = {}, project?: string): Promise<void> {
    const q = project ? `?project=${project}` : '';
    const res = await this.api('POST', ROUTES.pools + q, { body: { name, ...extra } });
    if (res.status !== 201) throw new Error(`createPool: ${res.status} ${JSON.stringify(res.body)}`);
  }

  async mintRegistrationToken(pool: string, body: Record<string, unknown> = {}, project?: string): Promise<string> {
    const q = project ? `?project=${project}` : '';
    const res = await this.api('POST', ROUTES.poolTokens(pool) + q, { body });
    if (res.status !== 201) throw new Error(`mint: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.token as string;
  }

  async register(regToken: string, body: Record<string, unknown> = {}): Promise<ApiResponse> {
    return this.api('POST', ROUTES.register, { token: regToken, body: { name: 'host-a', ...body } });
  }

  /** Pool + registration token + registration in one go. */
  async newRunner(pool = 'gpu', name = 'host-a'): Promise<RegisterResponse> {
    const pools = await this.api('GET', ROUTES.pools);
    if (!pools.body.some((p: { name: string }) => p.name === pool)) await this.createPool(pool);
    const reg = await this.mintRegistrationToken(pool);
    const res = await this.register(reg, { name });
    if (res.status !== 201) throw new Error(`register: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as RegisterResponse;
  }
}

export const HELLO: Hello = {
  type: 'hello',
  agentVersion: '0.1.0-test',
  host: { hostname: 'host-a', os: 'linux', arch: 'x64', cpus: 4, memoryBytes: 8 * 2 ** 30 },
  capabilities: { executors: ['shell'], maxJobs: 1, labels: { gpu: 'none' }, airgapped: false },
  held: [],
};

export interface UpgradeRefusal {
  status: number;
  body: ErrorBody;
}

/** A runner-side WebSocket with a queue of parsed coordinator messages. */
export class TestSocket {
  private readonly queue: CoordinatorMessage[] = [];
  private readonly waiters: ((m: CoordinatorMessage) => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const parsed = parseCoordinatorMessage(data.toString());
      if (!parsed.ok) throw new Error(`coordinator sent an invalid frame: ${parsed.error}`);
      const waiter = this.waiters.shift();
      if (waiter) waiter(parsed.message);
      else this.queue.push(parsed.message);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /** Opens the socket; rejects with an UpgradeRefusal when the coordinator answers with an HTTP error. */
  static open(
    url: string,
    token: string | null,
    opts: { version?: string | null; maxPayload?: number } = {},
  ): Promise<TestSocket> {
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const version = opts.version === undefined ? String(PROTOCOL_VERSION) : opts.version;
    if (version !== null) headers[PROTOCOL_VERSION_HEADER] = version;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers, maxPayload: opts.maxPayload });
      ws.once('open', () => resolve(new TestSocket(ws)));
      ws.once('unexpected-response', (_req, res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          reject({ status: res.statusCode ?? 0, body: JSON.parse(text) } satisfies UpgradeRefusal);
          ws.terminate();
        });
      });
      ws.once('error', reject);
    });
  }

  static async refusal(url: string, token: string | null, opts: { version?: string | null } = {}): Promise<UpgradeRefusal> {
    try {
      const s = await TestSocket.open(url, token, opts);
      s.ws.terminate();
    } catch (err) {
      if ((err as UpgradeRefusal).status) return err as UpgradeRefusal;
      throw err;
    }
    throw new Error('upgrade was accepted');
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  next(timeoutMs = 5000): Promise<CoordinatorMessage> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no message from the coordinator in time')), timeoutMs);
      this.waiters.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
  }

  async expect<T extends CoordinatorMessage['type']>(type: T): Promise<Extract<CoordinatorMessage, { type: T }>> {
    const m = await this.next();
    if (m.type !== type) throw new Error(`expected ${type}, got ${JSON.stringify(m)}`);
    return m as Extract<CoordinatorMessage, { type: T }>;
  }

  async hello(hello: Hello = HELLO) {
    this.send(hello);
    return this.expect('welcome');
  }

  async heartbeat(seq: number) {
    this.send({ type: 'heartbeat', seq });
    return this.expect('heartbeat_ack');
  }

  close(): void {
    this.ws.close();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until check() returns a truthy value. */
export async function eventually<T>(check: () => Promise<T | undefined | null | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(25);
  }
}
