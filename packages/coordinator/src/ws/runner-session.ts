import {
  CloseCode,
  type CoordinatorMessage,
  coerceError,
  ErrorCode,
  type Heartbeat,
  type Hello,
  type RunnerDrain,
  parseRunnerMessage,
  type TokenConfirm,
} from '@rbtk/protocol';
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import { auditRow } from '../audit.js';
import type { CoordinatorContext } from '../context.js';
import { coordinatorDrainReason } from '../drain.js';
import { RunnerJobs } from '../jobs/runner-jobs.js';
import type { Logger } from '../log.js';
import { DEFAULT_HELLO_TIMEOUT_MS } from '../options.js';
import { TokenRotation } from '../rotation.js';
import { knownStoreError } from '../store/store-errors.js';
import type { RunnerRecord } from '../store/rows.js';
import { corkForTurn } from './cork.js';
import { rawToString } from './raw.js';
import type { LiveSession } from './sessions.js';

/**
 * One runner's WebSocket session: hello, heartbeats, token confirms, and the
 * job frames (handed to RunnerJobs).
 * Frames are handled one at a time, in order, so a token_confirm never
 * overtakes the heartbeat_ack that carried its token; job frames only until
 * their write is queued (see pipelined()).
 */
export class RunnerSession implements LiveSession {
  readonly runnerId: string;
  private readonly log: Logger;
  private readonly rotation: TokenRotation;
  private greeted = false;
  /** Set as a hello is taken (greeted waits for its write): any later hello on this socket is refused. */
  private helloSeen = false;
  private helloTimer: NodeJS.Timeout | undefined;
  /** The coordinator-side drain reason this runner was last told (null: none, or nothing said yet). */
  private toldDrain: string | null = null;
  private closing = false;
  private queue: Promise<void> = Promise.resolve();
  private readonly jobs: RunnerJobs;

  constructor(
    private readonly ctx: CoordinatorContext,
    private readonly ws: WebSocket,
    runner: RunnerRecord,
    /** The socket under `ws`, to batch a turn's writes. */
    private readonly socket: Duplex,
    /** How long after the upgrade the first frame (hello) may take. */
    private readonly helloTimeoutMs: number = DEFAULT_HELLO_TIMEOUT_MS,
  ) {
    this.runnerId = runner.id;
    this.log = ctx.log.child({ runnerId: runner.id, pool: runner.poolName, project: runner.project });
    this.rotation = new TokenRotation(ctx, runner.id);
    this.jobs = new RunnerJobs(ctx.jobs, runner.id, (m) => this.send(m), () => !this.closing);
  }

  start(): void {
    this.ctx.sessions.add(this);
    // An upgraded socket that never speaks would hold its slot (and its runner's session) forever.
    this.helloTimer = setTimeout(() => this.helloTimedOut(), this.helloTimeoutMs);
    this.helloTimer.unref();
    this.ws.on('message', (data, isBinary) => {
      // Any first frame ends the wait: a hello is handled, anything else is refused (hello_required).
      clearTimeout(this.helloTimer);
      // The catch: a throw outside onFrame's own try must close this session, not reject the chain
      // (an unhandled rejection) and silently skip every later frame.
      this.queue = this.queue.then(() => this.onFrame(data, isBinary)).catch((err: unknown) => this.failed(err));
    });
    this.ws.on('close', (code) => {
      clearTimeout(this.helloTimer);
      this.closing = true;
      this.ctx.sessions.remove(this);
      this.jobs.onClose();
      this.log.info({ code }, 'runner disconnected');
    });
    // ws reports oversized frames (then closes with 1009) and socket errors here.
    this.ws.on('error', (err) => this.log.warn({ err: coerceError(err).message }, 'runner socket error'));
    this.log.info('runner connected');
  }

  close(code: number, reason: string): void {
    this.closing = true;
    this.ws.close(code, reason);
  }

  private send(message: CoordinatorMessage): void {
    if (this.closing) return;
    corkForTurn(this.socket);
    this.ws.send(JSON.stringify(message));
  }

  /** Tells the runner what was wrong with its frame, then closes (4400 unless said otherwise). */
  private refuse(code: string, message: string, closeCode: number = CloseCode.BadMessage): void {
    this.log.warn({ code, reason: message }, 'runner frame refused');
    this.send({ type: 'error', code, message });
    this.close(closeCode, code);
  }

  private async onFrame(data: RawData, isBinary: boolean): Promise<void> {
    if (this.closing) return;
    if (isBinary) return this.refuse(ErrorCode.MalformedMessage, 'frames must be text (JSON), not binary');
    const parsed = parseRunnerMessage(rawToString(data));
    if (!parsed.ok) return this.refuse(parsed.code, parsed.error);
    const message = parsed.message;
    if (message.type !== 'hello' && !this.greeted) {
      return this.refuse(ErrorCode.HelloRequired, `send "hello" before "${message.type}"`);
    }
    // A second hello would re-run the job reconciliation and replace the dispatch entry, dropping its reservations.
    if (message.type === 'hello' && this.helloSeen) return this.refuse(ErrorCode.MalformedMessage, 'hello twice: a session says hello once');
    try {
      switch (message.type) {
        case 'hello':
          return await this.onHello(message);
        case 'heartbeat':
          return await this.onHeartbeat(message);
        case 'token_confirm':
          return await this.onTokenConfirm(message);
        case 'drain':
          return await this.onDrain(message);
        case 'accept':
          return this.jobs.onAccept(message);
        case 'reject':
          return this.pipelined(this.jobs.onReject(message));
        case 'started':
          return this.pipelined(this.jobs.onStarted(message));
        case 'log':
          return this.pipelined(this.jobs.onLog(message));
        case 'result':
          return this.pipelined(this.jobs.onResult(message));
      }
    } catch (err) {
      this.failed(err);
    }
  }

  /**
   * Job frames queue their write synchronously, and the group commit applies
   * writes in queue order, so the next frame need not wait for this one's
   * commit: a runner's started and result then share one. Each answer
   * (log_ack, result_ack) still waits for its own commit.
   */
  private pipelined(work: Promise<void>): void {
    work.catch((err: unknown) => this.failed(err));
  }

  private failed(err: unknown): void {
    // Our fault, not the runner's: say so (disk full, else without detail) and let it reconnect and resend.
    const known = knownStoreError(err);
    this.log.error({ err: coerceError(err) }, 'runner frame handling failed');
    this.refuse(known?.code ?? ErrorCode.Internal, known?.message ?? 'internal error', CloseCode.InternalError);
  }

  private async onHello(hello: Hello): Promise<void> {
    this.helloSeen = true;
    const runner = await this.ctx.store.runners.recordHello(
      this.runnerId,
      {
        agentVersion: hello.agentVersion,
        host: hello.host,
        capabilities: hello.capabilities,
        labels: hello.capabilities.labels,
        selfDrain: hello.drainReason ?? null,
      },
      this.ctx.now(),
    );
    if (!runner) return this.gone();
    this.greeted = true;
    this.send({
      type: 'welcome',
      runnerId: runner.id,
      name: runner.name,
      pool: runner.poolName,
      project: runner.project,
      status: runner.status,
      heartbeatIntervalMs: this.ctx.timings.heartbeatIntervalMs,
      offlineAfterMs: this.ctx.timings.offlineAfterMs,
      serverTime: new Date(this.ctx.now()).toISOString(),
      ...(runner.poolDockerNetwork ? { dockerNetwork: runner.poolDockerNetwork } : {}),
      ...this.minRunnerVersion(),
    });
    // An operator's drain (or the pool's) outlives the connection: repeat it before any job frame.
    this.toldDrain = null;
    this.drainChanged(runner, false);
    this.log.info({ agentVersion: hello.agentVersion, status: runner.status, drainReason: hello.drainReason }, 'runner hello');
    // After welcome, so the runner hears who it is before any cancel or assign.
    await this.jobs.onHello(runner, hello);
  }

  private async onHeartbeat(heartbeat: Heartbeat): Promise<void> {
    this.ctx.metrics.heartbeats.inc();
    // Both writes queue in this turn, so the heartbeat and a rotation's pending token share one commit.
    const recorded = this.ctx.store.runners.recordHeartbeat(this.runnerId, this.ctx.now());
    const rotation = this.rotation.onHeartbeat();
    rotation.catch(() => {}); // a runner deleted meanwhile fails it too: that is gone(), below; else awaited there
    const status = await recorded;
    if (!status) return this.gone();
    this.jobs.onStatus(status);
    const rotatedToken = await rotation;
    this.send({
      type: 'heartbeat_ack',
      seq: heartbeat.seq,
      status,
      heartbeatIntervalMs: this.ctx.timings.heartbeatIntervalMs,
      ...(rotatedToken ? { rotatedToken } : {}),
      ...this.minRunnerVersion(),
    });
  }

  private minRunnerVersion(): { minRunnerVersion?: string } {
    return this.ctx.minRunnerVersion ? { minRunnerVersion: this.ctx.minRunnerVersion } : {};
  }

  /** The runner drains itself (rbtk-runner drain, stopping, an upgrade) or resumes: DRAINING at once, audited. */
  private async onDrain(frame: RunnerDrain): Promise<void> {
    const selfDrain = frame.draining ? (frame.reason ?? 'drained by the runner') : null;
    const runner = await this.ctx.store.runners.recordDrain(this.runnerId, selfDrain, (r) =>
      auditRow({
        at: this.ctx.now(),
        actor: `runner:${r.id}`,
        action: frame.draining ? 'runner.drain' : 'runner.resume',
        resourceType: 'runner',
        resourceId: r.id,
        project: r.project,
        details: { name: r.name, pool: r.poolName, by: 'runner', ...(selfDrain ? { reason: selfDrain } : {}) },
      }),
    );
    if (!runner) return this.gone();
    this.jobs.onStatus(runner.status);
    this.log.info({ draining: frame.draining, reason: selfDrain, status: runner.status }, frame.draining ? 'runner draining' : 'runner resumed');
  }

  /**
   * The coordinator's side of the drain changed (or a session starts): tell the
   * runner when what it was last told differs; update dispatch unless asked not to
   * (at hello, the index entry comes after).
   */
  drainChanged(runner: RunnerRecord, updateIndex = true): void {
    if (!this.greeted) return; // its welcome and hello handling come next, with the stored drain
    const reason = coordinatorDrainReason(runner);
    if (reason !== this.toldDrain) {
      this.toldDrain = reason;
      this.send({ type: 'drain', draining: reason !== null, ...(reason ? { reason } : {}) });
    }
    if (updateIndex) this.jobs.onStatus(runner.status);
  }

  private async onTokenConfirm(confirm: TokenConfirm): Promise<void> {
    if (await this.rotation.onConfirm(confirm.tokenId)) {
      this.send({ type: 'token_confirmed', tokenId: confirm.tokenId });
      return;
    }
    // Not fatal: the runner keeps its current token, which still works.
    this.send({
      type: 'error',
      code: ErrorCode.TokenUnknown,
      message: `token ${confirm.tokenId} is neither a pending nor the current token of this runner`,
    });
  }

  private helloTimedOut(): void {
    if (this.closing) return;
    this.refuse(ErrorCode.HelloRequired, `no "hello" within ${this.helloTimeoutMs} ms of the upgrade`, CloseCode.HelloTimeout);
  }

  /** The runner row vanished under us (revoked or reaped meanwhile). */
  private gone(): void {
    this.refuse(ErrorCode.TokenRevoked, 'this runner no longer exists: register it again', CloseCode.Revoked);
  }
}
