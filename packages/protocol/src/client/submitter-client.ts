import type WebSocket from 'ws';
import { CloseCode, ErrorCode, RbtkError, coerceError } from '../errors.js';
import {
  parseSubmitterEvent,
  SubmitterRequest,
  type SubmitterEvent,
  type SubmitterRequestInput,
} from '../job-messages.js';
import type { Job, JobSpecInput } from '../schemas/job.js';
import { backoffDelay, DEFAULT_BACKOFF, sleep, type BackoffOptions } from './backoff.js';
import { openSubmitterSocket, type SubmitterSocketOptions } from './submitter-socket.js';
import { WatchState, type WatchEvent } from './watch-state.js';

export interface SubmitterClientOptions extends SubmitterSocketOptions {
  /** How long submit and cancel wait for their answer (default 30 s). */
  requestTimeoutMs?: number;
  /** Reconnect timing while watches are open. */
  reconnect?: BackoffOptions;
}

export interface SubmitResult {
  job: Job;
  /** false when the idempotency key named an existing job, which is returned instead. */
  created: boolean;
}

export interface WatchOptions {
  /** Resume the log from this byte offset of the current attempt (default 0). */
  fromOffset?: number;
}

export type { WatchEvent };

type Answer = Extract<SubmitterEvent, { type: 'submitted' | 'ack' }>;
type Outgoing = SubmitterRequestInput extends infer R ? (R extends unknown ? Omit<R, 'reqId'> : never) : never;

interface Pending {
  resolve: (answer: Answer) => void;
  reject: (err: RbtkError) => void;
  /** Watch requests are re-sent after a reconnect instead of failing with the connection. */
  watch: boolean;
}

/** Close codes after which reconnecting cannot help. */
const FATAL_CLOSES: readonly number[] = [CloseCode.BadMessage, CloseCode.Revoked];
/** Refusals at the upgrade that a retry would only repeat. */
const isFatalStatus = (status: number) => status === 401 || status === 403 || status === 404 || status === 426;

/**
 * The job submitters' client over the coordinator's `/v1/jobs/ws` socket: submit, cancel
 * and watch jobs. Every incoming frame is validated; answers are matched to requests by
 * reqId; an `error` answer rejects with RbtkError(code, message). Watches survive a dropped
 * connection: the client reconnects with jittered exponential backoff and resumes each log
 * from the last byte it delivered, so every byte is delivered once, in order.
 */
export class SubmitterClient {
  private ws: WebSocket | undefined;
  private connecting: Promise<WebSocket> | undefined;
  private readonly pending = new Map<string, Pending>();
  private readonly watches = new Map<string, WatchState>();
  private readonly stop = new AbortController();
  private seq = 0;
  /** An `error` frame without reqId: the reason the server is about to close. */
  private lastError: RbtkError | undefined;

  private constructor(private readonly options: SubmitterClientOptions) {}

  /** Connects once, so a wrong URL or token fails here rather than on the first request. */
  static async connect(options: SubmitterClientOptions): Promise<SubmitterClient> {
    const client = new SubmitterClient(options);
    client.attach(await openSubmitterSocket(options));
    return client;
  }

  /** Submits a job; answers the new job, or the existing one for a known idempotency key (another spec with it: RbtkError idempotency_conflict). */
  async submit(spec: JobSpecInput): Promise<SubmitResult> {
    const answer = await this.request({ type: 'submit', spec });
    if (answer.type !== 'submitted') throw new RbtkError(ErrorCode.Internal, `the coordinator answered submit with "${answer.type}"`);
    return { job: answer.job, created: answer.created };
  }

  /** Asks the coordinator to cancel a job; the watch shows when it is cancelled. */
  async cancel(jobId: string): Promise<void> {
    await this.request({ type: 'cancel', jobId });
  }

  /**
   * The job's state changes and log, in order: first a `job` event with its current state,
   * then its log from `fromOffset`, then live events. Ends after the terminal `job` event.
   */
  async *watch(jobId: string, options: WatchOptions = {}): AsyncGenerator<WatchEvent, void, undefined> {
    if (this.watches.has(jobId)) throw new RbtkError(ErrorCode.BadRequest, `job ${jobId} is already being watched by this client`);
    const watch = new WatchState(jobId, options.fromOffset ?? 0);
    this.watches.set(jobId, watch);
    this.sendWatch(watch);
    try {
      for (;;) {
        const event = await watch.queue.next();
        if (event === undefined) return;
        yield event;
      }
    } finally {
      if (this.watches.get(jobId) === watch) {
        this.watches.delete(jobId);
        // The consumer stopped early: tell the server, best effort.
        if (!watch.queue.isEnded && this.ws) this.request({ type: 'unwatch', jobId }).catch(() => undefined);
      }
    }
  }

  /** Closes the socket; open watches end, unanswered requests fail. Safe to call twice. */
  async close(): Promise<void> {
    if (this.stop.signal.aborted) return;
    this.stop.abort();
    const closed = new RbtkError(ErrorCode.Unavailable, 'the submitter client was closed', 0);
    for (const p of this.pending.values()) p.reject(closed);
    this.pending.clear();
    for (const w of this.watches.values()) w.queue.end();
    this.watches.clear();
    const ws = this.ws;
    this.ws = undefined;
    if (!ws || ws.readyState === ws.CLOSED) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => ws.terminate(), 2_000);
      ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      ws.close(CloseCode.Normal);
    });
  }

  /** Sends `watch` from the cursor once per connection (a reconnect may race a new watch). */
  private sendWatch(watch: WatchState): void {
    this.connection().then(
      (ws) => {
        if (this.watches.get(watch.jobId) === watch && watch.sentOn !== ws) this.watchOn(ws, watch);
      },
      (err: RbtkError) => this.endWatch(watch, err),
    );
  }

  /** A refused watch ends with the coordinator's error (not_found, forbidden...). */
  private watchOn(ws: WebSocket, watch: WatchState): void {
    watch.sentOn = ws;
    const { next, attempt } = watch.cursor;
    this.requestOn(ws, { type: 'watch', jobId: watch.jobId, fromOffset: next, ...(attempt !== undefined ? { attempt } : {}) }, true).then(
      () => (watch.resyncing = false),
      (err: RbtkError) => this.endWatch(watch, err),
    );
  }

  private endWatch(watch: WatchState, err?: Error): void {
    if (err) watch.queue.fail(err);
    else watch.queue.end();
    if (this.watches.get(watch.jobId) === watch) this.watches.delete(watch.jobId);
  }

  private async request(frame: Outgoing): Promise<Answer> {
    return this.requestOn(await this.connection(), frame, false);
  }

  private requestOn(ws: WebSocket, frame: Outgoing, watch: boolean): Promise<Answer> {
    const reqId = `r${(++this.seq).toString(36)}`;
    const checked = SubmitterRequest.safeParse({ ...frame, reqId });
    if (!checked.success) {
      const issue = checked.error.issues[0];
      const field = issue && issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : '';
      return Promise.reject(new RbtkError(ErrorCode.BadRequest, `invalid ${frame.type} request: ${field}${issue?.message ?? 'invalid'}`));
    }
    const timeoutMs = this.options.requestTimeoutMs ?? 30_000;
    return new Promise<Answer>((resolve, reject) => {
      const timer = watch ? undefined : setTimeout(() => {
        this.pending.delete(reqId);
        reject(new RbtkError(ErrorCode.Unavailable, `the coordinator did not answer ${frame.type} within ${timeoutMs / 1000}s`, 0));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.pending.delete(reqId);
      };
      this.pending.set(reqId, {
        watch,
        resolve: (a) => (done(), resolve(a)),
        reject: (e) => (done(), reject(e)),
      });
      ws.send(JSON.stringify(checked.data));
    });
  }

  /** The open socket; waits for a reconnect in progress, or opens one. */
  private async connection(): Promise<WebSocket> {
    if (this.stop.signal.aborted) throw new RbtkError(ErrorCode.Unavailable, 'the submitter client was closed', 0);
    if (this.ws && this.ws.readyState === this.ws.OPEN) return this.ws;
    this.connecting ??= openSubmitterSocket(this.options)
      .then((ws) => this.attach(ws))
      .finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private attach(ws: WebSocket): WebSocket {
    if (this.stop.signal.aborted) {
      ws.terminate();
      throw new RbtkError(ErrorCode.Unavailable, 'the submitter client was closed', 0);
    }
    this.ws = ws;
    this.lastError = undefined;
    ws.on('message', (data: Buffer) => {
      if (ws === this.ws) this.onFrame(ws, data.toString('utf8'));
    });
    ws.on('error', () => undefined); // 'close' follows and says what to do
    ws.on('close', (code: number, reason: Buffer) => {
      if (ws === this.ws) this.onClose(code, reason.toString('utf8'));
    });
    // Watches open before a reconnect resume from the last byte they delivered.
    for (const watch of this.watches.values()) this.sendWatch(watch);
    return ws;
  }

  private onFrame(ws: WebSocket, data: string): void {
    const parsed = parseSubmitterEvent(data);
    if (!parsed.ok) {
      // A coordinator that breaks the contract will not do better after a reconnect.
      this.fail(new RbtkError(ErrorCode.Internal, `the coordinator sent an invalid frame: ${parsed.error}`));
      ws.close(CloseCode.BadMessage, 'invalid frame');
      return;
    }
    const event = parsed.message;
    switch (event.type) {
      case 'submitted':
      case 'ack':
        this.pending.get(event.reqId)?.resolve(event);
        return;
      case 'error': {
        const err = new RbtkError(event.code as ErrorCode, event.message);
        if (event.reqId !== undefined && this.pending.has(event.reqId)) this.pending.get(event.reqId)?.reject(err);
        else this.lastError = err;
        return;
      }
      case 'job': {
        const watch = this.watches.get(event.job.id);
        const step = watch?.onJob(event);
        if (!watch || step === 'continue') return;
        if (step === 'end') return this.endWatch(watch);
        // The answer to a later request shows the backlog was all sent (the coordinator
        // answers in order); if the socket drops first, the reconnect watches again.
        this.requestOn(ws, { type: 'unwatch', jobId: watch.jobId }, false).then(() => this.endWatch(watch), () => undefined);
        return;
      }
      case 'log': {
        const watch = this.watches.get(event.jobId);
        const step = watch?.onLog(event);
        if (!watch || step === 'continue') return;
        if (step === 'end') return this.endWatch(watch);
        // Bytes are missing (the attempt changed while we were away): watch again from the cursor.
        this.requestOn(ws, { type: 'unwatch', jobId: watch.jobId }, false).catch(() => undefined);
        this.watchOn(ws, watch);
        return;
      }
    }
  }

  private onClose(code: number, reason: string): void {
    this.ws = undefined;
    if (this.stop.signal.aborted) return;
    const lost = this.lastError ?? new RbtkError(ErrorCode.Unavailable,
      `the connection to the coordinator closed (${code}${reason ? ` ${reason}` : ''}) before it answered`, 0);
    for (const p of [...this.pending.values()]) if (!p.watch) p.reject(lost);
    for (const [reqId, p] of this.pending) if (p.watch) this.pending.delete(reqId);
    if (FATAL_CLOSES.includes(code)) return this.fail(lost);
    if (this.watches.size > 0) void this.reconnect();
  }

  /** Reconnects with backoff while watches are open; gives up after giveUpAfterMs or a refusal. */
  private async reconnect(): Promise<void> {
    if (this.connecting) return;
    const backoff = { ...DEFAULT_BACKOFF, ...this.options.reconnect };
    const started = Date.now();
    let resolveConnecting!: (ws: WebSocket) => void;
    let rejectConnecting!: (err: Error) => void;
    this.connecting = new Promise<WebSocket>((resolve, reject) => ((resolveConnecting = resolve), (rejectConnecting = reject)));
    this.connecting.catch(() => undefined);
    let lastError: RbtkError = new RbtkError(ErrorCode.Unavailable, 'the connection to the coordinator was lost', 0);
    for (let n = 0; ; n++) {
      if (!(await sleep(backoffDelay(n, backoff), this.stop.signal))) break;
      try {
        const ws = await openSubmitterSocket(this.options);
        this.connecting = undefined;
        resolveConnecting(this.attach(ws));
        return;
      } catch (err) {
        const e = coerceError(err);
        lastError = e instanceof RbtkError ? e : new RbtkError(ErrorCode.Unavailable, e.message, 0);
        if (isFatalStatus(lastError.status) || Date.now() - started >= backoff.giveUpAfterMs) break;
      }
    }
    this.connecting = undefined;
    rejectConnecting(lastError);
    if (!this.stop.signal.aborted) this.fail(lastError);
  }

  /** Ends every watch and request with `err`; the client stays usable for new requests. */
  private fail(err: RbtkError): void {
    for (const p of [...this.pending.values()]) p.reject(err);
    for (const w of [...this.watches.values()]) this.endWatch(w, err);
  }
}
