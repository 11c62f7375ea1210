import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  MAX_WS_FRAME_BYTES,
  PROTOCOL_VERSION_HEADER,
  ROUTES,
  parseRunnerMessage,
  type CoordinatorMessage,
  type ErrorBody,
  type JobSpecInput,
  type LogStream,
  type RegisterResponse,
  type ResultFrame,
  type RunnerMessage,
  type Welcome,
} from '@rbtk/protocol';
import { WebSocket, WebSocketServer } from 'ws';

export interface Upgrade {
  path: string | undefined;
  authorization: string | undefined;
  protocolVersion: string | undefined;
}

export interface Received {
  conn: number;
  message: RunnerMessage;
}

/** Decides how the peer answers one upgrade: undefined accepts it. */
export type Gate = (upgrade: Upgrade, index: number) => { status: number; body: ErrorBody } | undefined;

export interface PeerOptions {
  gate?: Gate;
  heartbeatIntervalMs?: number;
  offlineAfterMs?: number;
  /** Whether to answer hello with welcome (default true). */
  welcome?: boolean;
  /** Extra welcome fields (minRunnerVersion, status). */
  welcomeWith?: Partial<Welcome>;
  /** Whether to answer heartbeats (default true); false plays a coordinator that hangs. */
  ackHeartbeats?: boolean;
  /** Called for each frame after the peer's default handling; may send more. */
  onMessage?(message: RunnerMessage, ws: WebSocket, peer: CoordinatorPeer): void;
  /** Extra fields on each heartbeat_ack (rotatedToken, status). */
  ack?(seq: number, conn: number): Partial<Extract<CoordinatorMessage, { type: 'heartbeat_ack' }>>;
  register?(auth: string | undefined, body: unknown): { status: number; body: RegisterResponse | ErrorBody };
  /** Whether to answer log and result frames with log_ack / result_ack (default true). */
  ackJobs?: boolean;
}

/** One attempt's log as a coordinator keeps it: appended only at its current length. */
export interface PeerLog {
  length: number;
  chunks: { stream: LogStream; data: string }[];
  /** Log frames received, duplicates included. */
  frames: number;
}

/**
 * A small real coordinator peer for agent tests: node:http + ws on port 0,
 * speaking the protocol frames (validated with parseRunnerMessage). Not the
 * coordinator: it answers what each test tells it to.
 */
export class CoordinatorPeer {
  readonly upgrades: Upgrade[] = [];
  readonly received: Received[] = [];
  readonly closes: { conn: number; code: number; reason: string }[] = [];
  readonly sockets: WebSocket[] = [];
  /** Job logs by `jobId#attempt`, kept with the coordinator's rules (duplicates dropped, gaps refused). */
  readonly logs = new Map<string, PeerLog>();
  url = '';
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_FRAME_BYTES });
  private readonly server: Server;
  private waiters = new Set<() => void>();

  private constructor(readonly options: PeerOptions) {
    this.server = createServer((req, res) => {
      if (req.method === 'POST' && req.url === ROUTES.register && options.register) {
        void readBody(req).then((text) => {
          const answer = options.register!(req.headers.authorization, JSON.parse(text));
          res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
        });
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'not_found', message: `no route ${req.method} ${req.url}` } }));
    });
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  static async start(options: PeerOptions = {}): Promise<CoordinatorPeer> {
    const peer = new CoordinatorPeer(options);
    peer.server.listen(0, '127.0.0.1');
    await once(peer.server, 'listening');
    const addr = peer.server.address() as { port: number };
    peer.url = `http://127.0.0.1:${addr.port}`;
    return peer;
  }

  messages<T extends RunnerMessage['type']>(type: T): Extract<RunnerMessage, { type: T }>[] {
    return this.received.filter((r) => r.message.type === type).map((r) => r.message as Extract<RunnerMessage, { type: T }>);
  }

  /** Resolves when check() returns a value (checked on each peer event and every 10 ms); fails after timeoutMs. */
  waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 5_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const run = () => {
        const value = check();
        if (value === undefined || value === false) return;
        cleanup();
        resolve(value);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`peer: timed out waiting for ${what}`));
      }, timeoutMs);
      const poll = setInterval(run, 10);
      const cleanup = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.waiters.delete(run);
      };
      this.waiters.add(run);
      run();
    });
  }

  send(ws: WebSocket, message: CoordinatorMessage): void {
    ws.send(JSON.stringify(message));
  }

  /** The live session (the last one opened that is still open). */
  get live(): WebSocket | undefined {
    return [...this.sockets].reverse().find((ws) => ws.readyState === WebSocket.OPEN);
  }

  /** Pushes an assignment on the live session. */
  assign(jobId: string, spec: JobSpecInput, options: { attempt?: number; timeoutMs?: number } = {}): void {
    const ws = this.live;
    if (!ws) throw new Error('peer: no live session to assign on');
    ws.send(
      JSON.stringify({
        type: 'assign',
        jobId,
        attempt: options.attempt ?? 1,
        spec: { requires: { labels: {} }, timeout: '1h', retries: 0, ...spec },
        timeoutMs: options.timeoutMs ?? 60_000,
        acceptWithinMs: 10_000,
      }),
    );
  }

  cancel(jobId: string, attempt = 1, reason: 'cancelled' | 'stale' | 'timed_out' = 'cancelled'): void {
    this.send(this.live!, { type: 'cancel', jobId, attempt, reason });
  }

  /** The stored log of an attempt: all of it, or one stream. */
  logText(jobId: string, attempt = 1, stream?: LogStream): string {
    const log = this.logs.get(`${jobId}#${attempt}`);
    return (log?.chunks ?? []).filter((c) => !stream || c.stream === stream).map((c) => c.data).join('');
  }

  results(jobId: string, attempt = 1): ResultFrame[] {
    return this.messages('result').filter((r) => r.jobId === jobId && r.attempt === attempt);
  }

  /** Waits for the attempt's result and returns it. */
  waitForResult(jobId: string, attempt = 1, timeoutMs = 20_000): Promise<ResultFrame> {
    return this.waitFor(`result of ${jobId}#${attempt}`, () => this.results(jobId, attempt)[0], timeoutMs);
  }

  /** Closes every live session with a code, as the coordinator would on revoke or shutdown. */
  closeAll(code: number, reason = ''): void {
    for (const ws of this.sockets) if (ws.readyState === WebSocket.OPEN) ws.close(code, reason);
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const upgrade: Upgrade = {
      path: req.url,
      authorization: req.headers.authorization,
      protocolVersion: req.headers[PROTOCOL_VERSION_HEADER] as string | undefined,
    };
    const index = this.upgrades.push(upgrade) - 1;
    this.wake();
    const refusal = this.options.gate?.(upgrade, index);
    if (refusal) {
      const body = JSON.stringify(refusal.body);
      socket.end(
        `HTTP/1.1 ${refusal.status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.session(ws, index));
  }

  private session(ws: WebSocket, conn: number): void {
    this.sockets.push(ws);
    ws.on('close', (code, reason) => {
      this.closes.push({ conn, code, reason: reason.toString() });
      this.wake();
    });
    ws.on('message', (data) => {
      const parsed = parseRunnerMessage(data.toString());
      if (!parsed.ok) {
        this.send(ws, { type: 'error', code: parsed.code, message: parsed.error });
        ws.close(4400, 'bad message');
        return;
      }
      const message = parsed.message;
      this.received.push({ conn, message });
      if (message.type === 'hello' && this.options.welcome !== false) this.send(ws, this.welcome());
      if (message.type === 'heartbeat' && this.options.ackHeartbeats !== false) {
        this.send(ws, {
          type: 'heartbeat_ack',
          seq: message.seq,
          status: 'ONLINE',
          heartbeatIntervalMs: this.options.heartbeatIntervalMs ?? 50,
          ...this.options.ack?.(message.seq, conn),
        });
      }
      if (message.type === 'token_confirm') this.send(ws, { type: 'token_confirmed', tokenId: message.tokenId });
      if (message.type === 'log') this.storeLog(ws, message);
      if (message.type === 'result' && this.options.ackJobs !== false) {
        this.send(ws, { type: 'result_ack', jobId: message.jobId, attempt: message.attempt, accepted: true });
      }
      this.options.onMessage?.(message, ws, this);
      this.wake();
    });
  }

  private storeLog(ws: WebSocket, frame: Extract<RunnerMessage, { type: 'log' }>): void {
    const key = `${frame.jobId}#${frame.attempt}`;
    const log = this.logs.get(key) ?? { length: 0, chunks: [], frames: 0 };
    this.logs.set(key, log);
    log.frames++;
    // As the coordinator: append only at the current length; duplicates and gaps are answered with it.
    if (frame.offset === log.length) {
      log.chunks.push({ stream: frame.stream, data: frame.data });
      log.length += Buffer.byteLength(frame.data);
    }
    if (this.options.ackJobs !== false) {
      this.send(ws, { type: 'log_ack', jobId: frame.jobId, attempt: frame.attempt, offset: log.length });
    }
  }

  private welcome(): Welcome {
    return {
      type: 'welcome',
      runnerId: 'runner0000000001',
      name: 'host-a',
      pool: 'ci',
      project: 'default',
      status: 'ONLINE',
      heartbeatIntervalMs: this.options.heartbeatIntervalMs ?? 50,
      offlineAfterMs: this.options.offlineAfterMs ?? 5_000,
      serverTime: new Date().toISOString(),
      ...this.options.welcomeWith,
    };
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => resolve(text));
  });
}
