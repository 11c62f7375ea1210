import { CloseCode, parseDuration, type GpuInventory, type HostFacts, type Hello, type RunnerConfig } from '@rbtk/protocol';
import { Backoff, type BackoffOptions } from './backoff.js';
import { runConnectedSession, type SessionEnd } from './daemon-session.js';
import { DaemonState } from './daemon-state.js';
import { RevokedError, isUnrecoverable } from './errors.js';
import { collectHostFacts } from './inventory/host.js';
import type { JobManager } from './jobs/manager.js';
import type { Logger } from './log.js';
import { openSession } from './session.js';
import { sleep } from './sleep.js';
import { TokenRotation } from './token-rotation.js';
import { agentVersion } from './version.js';

export interface DaemonDeps {
  config: RunnerConfig;
  configPath: string;
  logger: Logger;
  /** Shared with the control server; created here when absent. */
  state?: DaemonState;
  hostFacts?: () => Promise<HostFacts>;
  agentVersion?: string;
  backoff?: Partial<BackoffOptions>;
  handshakeTimeoutMs?: number;
  /** The host's GPUs, sent in hello (collected once at start by runAgent); absent: none sent. */
  gpus?: GpuInventory;
  /** Runs the jobs the coordinator assigns; without it every assignment is rejected. */
  jobs?: JobManager;
  /** Injected by tests to simulate a full disk during rotation. */
  writeConfig?: (path: string, config: RunnerConfig) => Promise<void>;
}

export interface DaemonResult {
  reason: 'stopped';
  /** Sessions that reached the welcome. */
  connections: number;
}

/**
 * The runner's connect loop: open a session, heartbeat until it ends, back off
 * (full jitter, 500 ms doubling to 30 s, reset after a connection that lived
 * 30 s) and reconnect. When the signal aborts, running jobs get up to
 * shutdown_timeout to finish (the connection stays up meanwhile, so their
 * results go out), then the loop stops. Throws RevokedError or
 * ProtocolMismatchError, after which reconnecting cannot help.
 */
export async function runDaemon(deps: DaemonDeps, outer: AbortSignal): Promise<DaemonResult> {
  const { config, logger, jobs } = deps;
  const signal = stopAfterJobs(outer, jobs, parseDuration(config.shutdown_timeout));
  const version = deps.agentVersion ?? agentVersion();
  const state = deps.state ?? new DaemonState(config, version);
  const rotation = new TokenRotation({ configPath: deps.configPath, config, logger, writeConfig: deps.writeConfig });
  const backoff = new Backoff(deps.backoff);
  const hello: Omit<Hello, 'type' | 'held'> = {
    agentVersion: version,
    host: await (deps.hostFacts ?? collectHostFacts)(),
    capabilities: {
      executors: config.executors,
      maxJobs: config.max_jobs,
      labels: config.labels,
      airgapped: config.airgapped,
      ...(deps.gpus ? { gpus: deps.gpus } : {}),
    },
  };
  let connections = 0;

  try {
    while (!signal.aborted) {
      let reason: string;
      try {
        // Waits for a rotation write in flight, then uses whatever token is in memory.
        const token = await rotation.currentToken();
        // held is read at each connect: the coordinator sorts out which attempts are still current.
        const session = await openSession({
          url: config.url,
          token,
          hello: { ...hello, held: jobs?.heldAttempts() ?? [] },
          logger,
          signal,
          handshakeTimeoutMs: deps.handshakeTimeoutMs,
        });
        connections++;
        const { welcome } = session;
        state.connected(welcome);
        logger.info(
          {
            url: config.url,
            runnerId: welcome.runnerId,
            name: welcome.name,
            pool: welcome.pool,
            project: welcome.project,
            status: welcome.status,
            heartbeatIntervalMs: welcome.heartbeatIntervalMs,
            offlineAfterMs: welcome.offlineAfterMs,
          },
          'connected',
        );
        const end = await runConnectedSession({ session, state, rotation, logger, jobs }, signal);
        const livedMs = Date.now() - session.connectedAt;
        reason = describeEnd(end);
        state.disconnected(reason);
        if (end.stopped) break;
        if (end.close.code === CloseCode.Revoked) {
          throw new RevokedError(end.close.reason || 'the coordinator revoked this runner', 'token_revoked');
        }
        backoff.connectionEnded(livedMs);
        if (end.close.code === CloseCode.Replaced) {
          logger.warn(
            { code: end.close.code, reason: end.close.reason },
            'another session for this runner replaced this one; is a second rbtk-runner using this runner.yaml?',
          );
        } else {
          logger.warn({ code: end.close.code, reason: end.close.reason, connectedForMs: livedMs }, 'disconnected');
        }
      } catch (err) {
        if (signal.aborted) break;
        if (isUnrecoverable(err)) throw err;
        reason = (err as Error).message;
        state.failed(reason);
      }
      const delayMs = backoff.next();
      state.reconnecting();
      logger.info({ attempt: backoff.attempt, delayMs, reason }, 'reconnecting');
      if (!(await sleep(delayMs, signal))) break;
    }
  } finally {
    // Never leave with a rotation half done: the confirm must follow the write.
    await rotation.idle();
  }
  return { reason: 'stopped', connections };
}

/** A signal that aborts once `outer` aborted and the jobs have stopped (or at once without jobs). */
function stopAfterJobs(outer: AbortSignal, jobs: JobManager | undefined, timeoutMs: number): AbortSignal {
  if (!jobs) return outer;
  const inner = new AbortController();
  const onAbort = () => void jobs.shutdown(timeoutMs).finally(() => inner.abort());
  if (outer.aborted) onAbort();
  else outer.addEventListener('abort', onAbort, { once: true });
  return inner.signal;
}

function describeEnd(end: SessionEnd): string {
  if (end.heartbeats === 'stale') return 'coordinator stopped answering heartbeats';
  return `closed with code ${end.close.code}${end.close.reason ? `: ${end.close.reason}` : ''}`;
}
