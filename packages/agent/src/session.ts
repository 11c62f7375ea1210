import {
  CloseCode,
  MAX_WS_FRAME_BYTES,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_HEADER,
  ROUTES,
  parseCoordinatorMessage,
  type CoordinatorMessage,
  type Hello,
  type RunnerMessage,
  type Welcome,
} from '@rbtk/protocol/runner';
import type { IncomingMessage } from 'node:http';
import { coordinatorError } from './api/error-body.js';
import { coordinatorUrl } from './api/url.js';
import { ConnectionError, ProtocolMismatchError, RevokedError } from './errors.js';
import type { Logger } from './log.js';
import { WebSocket, type RawData } from './ws.js';

export interface SessionOptions {
  /** The coordinator's base URL (http:// or https://), as in runner.yaml. */
  url: string;
  token: string;
  hello: Omit<Hello, 'type'>;
  logger: Logger;
  signal?: AbortSignal;
  /** Upgrade plus welcome must finish within this; default 10 s. */
  handshakeTimeoutMs?: number;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

/** Frames after the welcome. */
export type SessionMessage = Exclude<CoordinatorMessage, Welcome>;

/**
 * One live WebSocket session with the coordinator, after the welcome.
 * Messages that arrive before a handler is set are queued, not lost.
 */
export class Session {
  readonly connectedAt = Date.now();
  readonly closed: Promise<CloseInfo>;
  private handler: ((message: SessionMessage) => void) | undefined;
  private readonly queue: SessionMessage[] = [];

  constructor(
    private readonly ws: WebSocket,
    readonly welcome: Welcome,
    closed: Promise<CloseInfo>,
    private readonly logger: Logger,
  ) {
    this.closed = closed;
    ws.on('message', (data) => {
      const message = parseFrame(data, logger);
      if (!message) return;
      if (message.type === 'welcome') {
        logger.warn('ignoring a second welcome from the coordinator');
        return;
      }
      if (this.handler) this.deliver(message);
      else this.queue.push(message);
    });
  }

  onMessage(handler: (message: SessionMessage) => void): void {
    this.handler = handler;
    for (const message of this.queue.splice(0)) this.deliver(message);
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a frame; false when the socket is no longer open (the caller drops it). */
  send(message: RunnerMessage): boolean {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message), (err) => {
      if (err) this.logger.debug({ err: err.message, type: message.type }, 'send failed');
    });
    return true;
  }

  /** Closes with a code, and cuts the TCP connection if the peer does not answer within graceMs. */
  async close(code: number = CloseCode.Normal, reason = '', graceMs = 2_000): Promise<CloseInfo> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason);
    const timer = setTimeout(() => this.ws.terminate(), graceMs);
    try {
      return await this.closed;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Drops the connection at once (a peer that stopped answering). */
  terminate(): void {
    this.ws.terminate();
  }

  private deliver(message: SessionMessage): void {
    try {
      this.handler!(message);
    } catch (err) {
      this.logger.error({ err: (err as Error).message, type: message.type }, 'handling a coordinator message failed');
    }
  }
}

/**
 * Opens the runner socket: upgrade with the runner token and protocol version,
 * send hello, wait for welcome. Refusals are sorted for the reconnect loop:
 * 401 or close 4401 -> RevokedError, 426 -> ProtocolMismatchError (both final),
 * anything else -> ConnectionError (retry).
 */
export function openSession(options: SessionOptions): Promise<Session> {
  const { logger } = options;
  const url = coordinatorUrl(options.url, ROUTES.runnerSocket, 'ws');
  const timeoutMs = options.handshakeTimeoutMs ?? 10_000;
  const ws = new WebSocket(url, {
    headers: { authorization: `Bearer ${options.token}`, [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) },
    maxPayload: MAX_WS_FRAME_BYTES,
    handshakeTimeout: timeoutMs,
  });
  const closed = new Promise<CloseInfo>((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  // One listener for the whole life of the socket, so a late error never goes unhandled.
  let handshakeDone = false;
  ws.on('error', (err) => {
    if (handshakeDone) logger.debug({ err: err.message }, 'websocket error');
  });

  return new Promise<Session>((resolve, reject) => {
    let lastError: string | undefined;
    const finish = (err?: Error) => {
      if (handshakeDone) return;
      handshakeDone = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      ws.off('message', onHandshakeMessage);
      if (err) {
        ws.terminate();
        reject(err);
      }
    };
    const timer = setTimeout(
      () => finish(new ConnectionError(`no welcome from ${url.origin} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onAbort = () => finish(new ConnectionError('connection attempt aborted'));
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });

    ws.on('unexpected-response', (_req, res) => {
      void readBody(res).then((text) => finish(classifyRefusal(res.statusCode ?? 0, text)));
    });
    ws.on('error', (err) => finish(new ConnectionError(`cannot connect to ${url.origin}: ${err.message}`)));
    ws.on('open', () => {
      ws.send(JSON.stringify({ type: 'hello', ...options.hello } satisfies Hello));
    });
    const onHandshakeMessage = (data: RawData) => {
      const message = parseFrame(data, logger);
      if (!message) return;
      if (message.type === 'welcome') {
        finish();
        // Built inside this listener, so frames that follow in the same chunk reach the session.
        resolve(new Session(ws, message, closed, logger));
      } else if (message.type === 'error') {
        lastError = `${message.code}: ${message.message}`;
        logger.warn({ code: message.code, error: message.message }, 'coordinator refused the hello');
      }
    };
    ws.on('message', onHandshakeMessage);
    void closed.then(({ code, reason }) => {
      if (code === CloseCode.Revoked) {
        finish(new RevokedError(reason || 'the coordinator revoked this runner', 'token_revoked'));
        return;
      }
      const why = reason || lastError;
      finish(new ConnectionError(`coordinator closed the connection before welcome (code ${code}${why ? `: ${why}` : ''})`));
    });
  });
}

function classifyRefusal(status: number, text: string): Error {
  const err = coordinatorError(status, text);
  if (status === 401) return new RevokedError(err.message, err.code);
  if (status === 426) return new ProtocolMismatchError(err.message);
  return new ConnectionError(`coordinator refused the connection: HTTP ${status}: ${err.message}`);
}

/** Reads a refusal's body (an ErrorBody), at most 64 KiB. */
function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      if (text.length < 65_536) text += chunk;
    });
    res.on('end', () => resolve(text));
    res.on('error', () => resolve(text));
    res.on('close', () => resolve(text));
  });
}

/** Validates one incoming frame; a bad one is logged and dropped, never acted on. */
function parseFrame(data: RawData, logger: Logger): CoordinatorMessage | undefined {
  const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
  const parsed = parseCoordinatorMessage(text);
  if (parsed.ok) return parsed.message;
  logger.warn({ code: parsed.code, error: parsed.error }, 'ignoring an invalid frame from the coordinator');
  return undefined;
}
