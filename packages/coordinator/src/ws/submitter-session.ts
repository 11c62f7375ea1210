import {
  CloseCode,
  coerceError,
  ErrorCode,
  parseSubmitterRequest,
  RbtkError,
  type SubmitterEvent,
  type SubmitterRequest,
} from '@rbtk/protocol';
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import type { CoordinatorContext } from '../context.js';
import { JobWatch } from '../jobs/job-watch.js';
import type { Logger } from '../log.js';
import { knownStoreError } from '../store/store-errors.js';
import { toJob } from '../wire.js';
import { corkForTurn } from './cork.js';
import { rawToString } from './raw.js';
import type { LiveSubmitter } from './sessions.js';

/** The error frame a socket of a revoked token gets before its close. */
export function revokedError(tokenId: string): { code: string; message: string } {
  return { code: ErrorCode.TokenRevoked, message: `API token ${tokenId} was revoked` };
}

/** Bytes waiting on the socket past which a watch's backlog waits for it to drain before its next page. */
const BACKLOG_HIGH_WATER = 1024 * 1024;
/** What one submitter socket may hold; tests lower them. */
export interface SubmitterLimits {
  /**
   * Bytes waiting past which the watcher is too slow for its live events: the
   * socket is closed with 1013, and the client reconnects and resumes from its
   * offset, instead of the coordinator holding an ever longer queue for it.
   */
  slowWatcherBytes: number;
  /**
   * Requests taken and not yet answered past which the socket is read no
   * further until half of them are answered: a client that pipelines without
   * bound is slowed by TCP (its sends block) instead of being buffered here.
   */
  maxPendingRequests: number;
  /** Watches one socket may hold; the one past it is refused (limit_exceeded) and the socket stays open. */
  maxWatches: number;
}

export const DEFAULT_SUBMITTER_LIMITS: SubmitterLimits = {
  slowWatcherBytes: 32 * 1024 * 1024,
  maxPendingRequests: 1024,
  maxWatches: 4096,
};

/** setTimeout's longest delay (about 24.8 days); an expiry further away is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The API token a socket was opened with. */
export interface SubmitterToken {
  tokenId: string;
  /** Epoch ms; the socket is closed with 4401 then. null: until revoked. */
  expiresAt: number | null;
}

/**
 * One submitter's WebSocket (`/v1/jobs/ws`): submit, watch, unwatch and
 * cancel, each answered with its reqId. Requests are handled concurrently (a
 * client that pipelines submits gets them committed together); answers name
 * their reqId, so they need not come back in order. At most
 * `maxPendingRequests` are in hand at once: past that the socket is paused.
 * A request that fails (unknown job, routing refusal, one watch too many) gets
 * an error with its reqId and the socket stays open; a malformed frame gets
 * an error and close 4400. When its API token is revoked (closed by the registry) or
 * expires, it gets an error saying so and close 4401.
 */
export class SubmitterSession implements LiveSubmitter {
  private readonly log: Logger;
  private readonly watches = new Map<string, JobWatch>();
  /** Requests taken and not yet answered. */
  private readonly pending = new Set<Promise<void>>();
  /** Requests read while `pending` was full, taken in order as it empties. */
  private readonly held: SubmitterRequest[] = [];
  /** A bad frame came: no more requests are taken. */
  private refusing = false;
  private closing = false;
  private expiryTimer: NodeJS.Timeout | undefined;
  readonly tokenId: string;

  constructor(
    private readonly ctx: CoordinatorContext,
    private readonly ws: WebSocket,
    private readonly project: string,
    private readonly token: SubmitterToken,
    /** The socket under `ws`, to batch a turn's writes. */
    private readonly socket: Duplex,
    private readonly limits: SubmitterLimits = DEFAULT_SUBMITTER_LIMITS,
  ) {
    this.tokenId = token.tokenId;
    this.log = ctx.log.child({ submitter: token.tokenId, project });
  }

  start(): void {
    this.ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    this.ws.on('close', () => {
      this.closing = true;
      clearTimeout(this.expiryTimer);
      this.ctx.sessions.submitters.remove(this);
      for (const watch of [...this.watches.values()]) watch.end();
    });
    this.ws.on('error', (err) => this.log.warn({ err: coerceError(err).message }, 'submitter socket error'));
    this.ctx.sessions.submitters.add(this);
    this.armExpiry();
    // A revoke that committed between this socket's authentication and its registration closed
    // nothing here: look once more, now that a later revoke is sure to find it.
    this.ctx.store.apiTokens.get(this.tokenId).then(
      (row) => {
        if (!row || row.revokedAt !== null) this.close(CloseCode.Revoked, 'API token revoked', revokedError(this.tokenId));
      },
      (err: unknown) => this.log.warn({ err: coerceError(err).message }, 'could not check the API token again'),
    );
  }

  /** Closes the socket, first sending `error` (no reqId) when given: the client's reason not to reconnect. */
  close(code: number, reason: string, error?: { code: string; message: string }): void {
    if (this.closing) return;
    if (error) this.send({ type: 'error', code: error.code, message: error.message });
    this.closing = true;
    for (const watch of [...this.watches.values()]) watch.end();
    this.ws.close(code, reason);
  }

  private armExpiry(): void {
    const { expiresAt } = this.token;
    if (expiresAt === null || this.closing) return;
    const left = expiresAt - this.ctx.now();
    if (left <= 0) {
      this.log.info({ expiresAt: new Date(expiresAt).toISOString() }, 'API token expired: closing its submitter socket');
      this.close(CloseCode.Revoked, 'API token expired', {
        code: ErrorCode.TokenExpired,
        message: `API token ${this.tokenId} expired at ${new Date(expiresAt).toISOString()}: create a new one (rbtk token create)`,
      });
      return;
    }
    this.expiryTimer = setTimeout(() => this.armExpiry(), Math.min(left, MAX_TIMER_MS));
    this.expiryTimer.unref();
  }

  private send(event: SubmitterEvent): void {
    if (this.closing) return;
    corkForTurn(this.socket);
    this.ws.send(JSON.stringify(event));
    if (this.ws.bufferedAmount > this.limits.slowWatcherBytes) {
      this.log.warn({ bufferedBytes: this.ws.bufferedAmount }, 'submitter reads too slowly for its watches: closing (it resumes where it was)');
      this.closing = true;
      for (const watch of [...this.watches.values()]) watch.end();
      this.ws.close(CloseCode.TryAgainLater, 'reading too slowly: reconnect and resume');
    }
  }

  /** Resolves once the socket has drained below the high-water mark (or closed). */
  private room(): Promise<void> {
    const socket = this.socket;
    if (this.closing || socket.writableLength <= BACKLOG_HIGH_WATER) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  }

  /** Says what was wrong, answers the requests taken before the bad frame (a submit may be committed already), then closes. */
  private refuse(code: string, message: string): void {
    this.log.warn({ code, reason: message }, 'submitter frame refused');
    this.refusing = true;
    this.send({ type: 'error', code, message });
    void Promise.allSettled([...this.pending]).then(() => {
      this.closing = true;
      this.ws.close(CloseCode.BadMessage, code);
    });
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    if (this.closing || this.refusing) return;
    if (isBinary) return this.refuse(ErrorCode.MalformedMessage, 'frames must be text (JSON), not binary');
    const parsed = parseSubmitterRequest(rawToString(data));
    if (!parsed.ok) return this.refuse(parsed.code, parsed.error);
    // Pausing stops the socket's reads, but frames of a read already taken still come: they wait here.
    if (this.pending.size >= this.limits.maxPendingRequests) return void this.held.push(parsed.message);
    this.take(parsed.message);
  }

  private take(request: SubmitterRequest): void {
    const work = this.answer(request);
    this.pending.add(work);
    if (this.pending.size >= this.limits.maxPendingRequests) this.ws.pause();
    void work.finally(() => {
      this.pending.delete(work);
      if (this.closing || this.pending.size > this.limits.maxPendingRequests / 2) return;
      while (this.held.length > 0 && this.pending.size < this.limits.maxPendingRequests) this.take(this.held.shift()!);
      if (this.held.length === 0 && this.ws.isPaused) this.ws.resume();
    });
  }

  private async answer(request: SubmitterRequest): Promise<void> {
    try {
      await this.handle(request);
    } catch (thrown) {
      const err = knownStoreError(thrown) ?? thrown;
      if (err instanceof RbtkError) {
        this.send({ type: 'error', reqId: request.reqId, code: err.code, message: err.message });
        return;
      }
      this.log.error({ err: coerceError(err), type: request.type }, 'submitter request failed');
      this.send({ type: 'error', reqId: request.reqId, code: ErrorCode.Internal, message: 'internal error; the coordinator log has the details' });
    }
  }

  private async handle(request: SubmitterRequest): Promise<void> {
    const jobs = this.ctx.jobs;
    switch (request.type) {
      case 'submit': {
        const { job, created } = await jobs.submit(this.project, request.spec);
        return this.send({ type: 'submitted', reqId: request.reqId, job: toJob(job), created });
      }
      case 'watch': {
        const job = await jobs.find(this.project, request.jobId);
        if (!this.watches.has(job.id) && this.watches.size >= this.limits.maxWatches) {
          throw new RbtkError(
            ErrorCode.LimitExceeded,
            `this socket already watches ${this.watches.size} jobs, the most one socket may: unwatch one or open another socket`,
          );
        }
        this.watches.get(job.id)?.end(); // a second watch of the same job replaces the first
        const watch = new JobWatch(
          jobs,
          job.id,
          request.fromOffset,
          request.attempt,
          (e) => this.send(e),
          () => {
            if (this.watches.get(job.id) === watch) this.watches.delete(job.id);
          },
          () => this.room(),
        );
        this.watches.set(job.id, watch);
        this.send({ type: 'ack', reqId: request.reqId });
        return watch.start().catch((err: unknown) => {
          // Acked already, so an error frame would name a settled request: close instead, and the client
          // reconnects and resumes every watch from its offset.
          watch.end();
          this.log.error({ err: coerceError(err).message, jobId: job.id }, 'watch failed: closing so the client resumes');
          this.closing = true;
          this.ws.close(CloseCode.InternalError, 'watch failed: reconnect and resume');
        });
      }
      case 'unwatch':
        this.watches.get(request.jobId)?.end();
        return this.send({ type: 'ack', reqId: request.reqId });
      case 'cancel':
        await jobs.cancel(this.project, request.jobId);
        return this.send({ type: 'ack', reqId: request.reqId });
    }
  }
}
