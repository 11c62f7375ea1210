import { CloseCode } from '@rbtk/protocol/runner';
import type { DaemonState } from './daemon-state.js';
import type { DrainControl, DrainInfo } from './drain.js';
import type { JobManager } from './jobs/manager.js';
import { runHeartbeatLoop, staleAfter, type HeartbeatLoopEnd } from './heartbeat.js';
import type { Logger } from './log.js';
import type { AgentMetrics } from './metrics/agent-metrics.js';
import type { CloseInfo, Session } from './session.js';
import type { TokenRotation } from './token-rotation.js';

export interface ConnectedDeps {
  session: Session;
  state: DaemonState;
  rotation: TokenRotation;
  logger: Logger;
  /** Absent in a runner that runs no jobs (tests of the connection alone). */
  jobs?: JobManager;
  metrics?: AgentMetrics;
  /** Reports the runner's own drain to the coordinator, and keeps the coordinator's. */
  drain?: DrainControl;
  /** The drainReason this session's hello carried. */
  helloDrainReason?: string;
  /** welcome and heartbeat_ack may name the oldest rbtk-runner the coordinator wants. */
  onMinRunnerVersion?: (minimum: string | undefined) => void;
  random?: () => number;
}

export interface SessionEnd {
  close: CloseInfo;
  /** The daemon was asked to stop (the signal aborted). */
  stopped: boolean;
  heartbeats: HeartbeatLoopEnd;
}

/**
 * Runs one welcomed session until it closes or the signal aborts: answers
 * coordinator frames, heartbeats, rotates the token. On abort it closes the
 * socket with 1000 and waits for the close.
 */
export async function runConnectedSession(deps: ConnectedDeps, signal: AbortSignal): Promise<SessionEnd> {
  const { session, state, rotation, logger } = deps;
  const { welcome } = session;
  let intervalMs = welcome.heartbeatIntervalMs;
  let lastAckAt = Date.now();

  // The coordinator repeats its own drain after each welcome; ours went in hello, and goes out on each change.
  const { drain } = deps;
  drain?.setCoordinatorDrain(null);
  const reportDrain = (local: DrainInfo | null) =>
    session.send({ type: 'drain', draining: local !== null, ...(local ? { reason: local.reason } : {}) });
  const unsubscribe = drain?.onLocalChange(reportDrain);
  // A drain that began between hello and the welcome: say it before any assignment is answered.
  if (drain && (drain.localDrain?.reason ?? null) !== (deps.helloDrainReason ?? null)) reportDrain(drain.localDrain);

  // Before the handler: frames queued since the welcome (an assign) are delivered inside onMessage,
  // and their answers need the session. Attaching also resends what the last connection left unacknowledged.
  deps.jobs?.attach((frame) => session.send(frame), welcome.dockerNetwork);
  session.onMessage((message) => {
    switch (message.type) {
      case 'heartbeat_ack':
        lastAckAt = Date.now();
        intervalMs = message.heartbeatIntervalMs;
        state.acked(message);
        deps.onMinRunnerVersion?.(message.minRunnerVersion);
        if (message.rotatedToken) {
          rotation.rotate(message.rotatedToken, (confirm) => session.send(confirm)).then(
            (saved) => saved && state.rotated(),
            (err: unknown) => logger.error({ err: (err as Error).message }, 'token rotation failed'),
          );
        }
        break;
      case 'token_confirmed':
        logger.debug({ tokenId: message.tokenId }, 'token confirmed');
        break;
      case 'error':
        logger.warn({ code: message.code, error: message.message }, 'coordinator reported an error');
        break;
      case 'drain': {
        const reason = message.draining ? message.reason || 'drained by the coordinator' : null;
        logger.info({ draining: message.draining, reason }, message.draining ? 'drained by the coordinator' : 'resumed by the coordinator');
        drain?.setCoordinatorDrain(reason);
        break;
      }
      case 'assign':
      case 'cancel':
      case 'log_ack':
      case 'result_ack':
        if (deps.jobs) deps.jobs.handle(message);
        else if (message.type === 'assign') {
          session.send({ type: 'reject', jobId: message.jobId, attempt: message.attempt, reason: 'this runner runs no jobs' });
        }
        break;
    }
  });

  // The heartbeat loop stops on either the daemon's signal or the socket closing.
  const loop = new AbortController();
  const stopLoop = () => loop.abort();
  // Aborted already (an upgrade the welcome asked for, with nothing to wait for): the loop ends at once.
  if (signal.aborted) stopLoop();
  else signal.addEventListener('abort', stopLoop, { once: true });
  void session.closed.then(stopLoop);
  let heartbeats: HeartbeatLoopEnd;
  try {
    heartbeats = await runHeartbeatLoop(
      {
        send: (frame) => session.send(frame),
        intervalMs: () => intervalMs,
        lastAckAt: () => lastAckAt,
        // Well before the coordinator's offlineAfter: a runner that reconnects in time loses no job.
        staleAfterMs: () => staleAfter(intervalMs, welcome.offlineAfterMs),
        onSent: () => state.heartbeatSent(),
        onFailed: (reason) => deps.metrics?.heartbeatFailed(reason),
        random: deps.random,
      },
      loop.signal,
    );
  } finally {
    signal.removeEventListener('abort', stopLoop);
    unsubscribe?.();
    deps.jobs?.detach();
  }

  if (heartbeats === 'stale') {
    logger.warn({ lastAckMsAgo: Date.now() - lastAckAt }, 'coordinator stopped answering heartbeats; dropping the connection');
    session.terminate();
  }
  if (signal.aborted) {
    const close = await session.close(CloseCode.Normal, 'runner stopping');
    return { close, stopped: true, heartbeats };
  }
  return { close: await session.closed, stopped: false, heartbeats };
}
