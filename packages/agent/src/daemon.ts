import {
  CloseCode,
  parseDuration,
  type GpuInventory,
  type HostFacts,
  type Hello,
  type RunnerConfig,
} from '@rbtk/protocol/runner';
import { Backoff, type BackoffOptions } from './backoff.js';
import { DaemonExit, type ExitGoal } from './daemon-exit.js';
import { runConnectedSession, type SessionEnd } from './daemon-session.js';
import { DaemonState } from './daemon-state.js';
import { DrainControl } from './drain.js';
import { RevokedError, isUnrecoverable } from './errors.js';
import { collectHostFacts } from './inventory/host.js';
import type { JobManager } from './jobs/manager.js';
import type { Logger } from './log.js';
import type { AgentMetrics } from './metrics/agent-metrics.js';
import { MinimumVersionGate } from './minimum-version.js';
import { openSession } from './session.js';
import { sleep } from './sleep.js';
import { TokenRotation } from './token-rotation.js';
import { readInstalledVersion, runUpgradeWatchLoop, type UpgradeWatchDeps } from './upgrade.js';
import { agentVersion } from './version.js';

/** This soon after a SIGCONT a lost connection is retried quickly, whatever the backoff had grown to. */
const RESUMED_RECONNECT_MS = 5000;
/** ...but 250-500 ms apart after the first: a coordinator that refuses fast would get a storm of tries. */
const RESUMED_RETRY_MS = 250;

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
  /** Counts heartbeat failures (metrics_listen); reconnects and rotations it reads from `state`. */
  metrics?: AgentMetrics;
  /** Injected by tests to simulate a full disk during rotation. */
  writeConfig?: (path: string, config: RunnerConfig) => Promise<void>;
  /** Whether the runner takes jobs (shared with the control socket); created here when absent. */
  drain?: DrainControl;
  /** Aborting it stops the running jobs now (a second SIGTERM); a string reason ends up in their results. */
  forceStop?: AbortSignal;
  /** Watch the installed agent's version; absent: no watch, and no installed version to restart into (tests of the connection alone). */
  upgradeWatch?: Pick<UpgradeWatchDeps, 'packageJson' | 'intervalMs' | 'wakeup'>;
}

export interface DaemonResult {
  /** upgrade: it drained for a newer agent (on disk, or the coordinator's minimum); exit 75. */
  reason: ExitGoal;
  /** Sessions that reached the welcome. */
  connections: number;
}

/**
 * The runner's connect loop: open a session, heartbeat until it ends, back off
 * (full jitter, 500 ms doubling to 30 s, reset after a connection that lived
 * 30 s) and reconnect. When the signal aborts (SIGTERM), or an upgrade is
 * pending, the runner drains: the coordinator hears at once, and the running
 * jobs finish (a stop gives them shutdown_timeout, an upgrade all they need)
 * while the connection stays up, so their results go out; then the loop
 * stops. Throws RevokedError or ProtocolMismatchError, after which
 * reconnecting cannot help.
 */
export async function runDaemon(deps: DaemonDeps, outer: AbortSignal): Promise<DaemonResult> {
  const { config, logger, jobs } = deps;
  const version = deps.agentVersion ?? agentVersion();
  const state = deps.state ?? new DaemonState(config, version);
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
  const drain = deps.drain ?? new DrainControl();
  const exit = new DaemonExit({
    drain,
    logger,
    jobs,
    shutdownTimeoutMs: parseDuration(config.shutdown_timeout),
    shutdownTimeout: config.shutdown_timeout,
  });
  const signal = exit.signal;
  state.trackDrain(drain, () => exit.goal ?? null);
  const onStop = () => exit.stop(`rbtk-runner is stopping (${describeReason(outer.reason, 'asked to stop')})`);
  const onForce = () => exit.force(describeReason(deps.forceStop?.reason, 'asked to stop at once'));
  if (outer.aborted) onStop();
  else outer.addEventListener('abort', onStop, { once: true });
  deps.forceStop?.addEventListener('abort', onForce, { once: true });
  const packageJson = deps.upgradeWatch?.packageJson;
  const minimum = new MinimumVersionGate({
    runningVersion: version,
    installedVersion: async () => (packageJson ? readInstalledVersion(packageJson) : null),
    drain,
    logger,
    upgrade: (reason) => exit.upgrade(reason),
  });
  state.trackUpgradeRequired(() => minimum.upgradeRequired);
  const checkMinimum = (required: string | undefined) => minimum.check(required);
  const stopWatch = new AbortController();
  const watch = deps.upgradeWatch
    ? runUpgradeWatchLoop(
        {
          ...deps.upgradeWatch,
          runningVersion: version,
          logger,
          onNewer: (installed) => exit.upgrade(`rbtk-runner ${installed} is installed; this is ${version}`),
        },
        stopWatch.signal,
      )
    : Promise.resolve();
  const rotation = new TokenRotation({ configPath: deps.configPath, config, logger, writeConfig: deps.writeConfig });
  const backoff = new Backoff(deps.backoff);
  let connections = 0;
  // A hosted pool in stopped mode freezes idle members (SIGSTOP, docker pause + SIGCONT) and closes
  // their sessions; the SIGCONT that starts one means a job waits for it: reconnect now, no backoff.
  let resumedAt = Number.NEGATIVE_INFINITY;
  let cutBackoff: AbortController | null = null;
  // The first try after a SIGCONT goes at once: the backoff sleep it cuts, or the next one when connected.
  let reconnectNow = false;
  const onResume = () => {
    resumedAt = Date.now();
    if (cutBackoff) cutBackoff.abort();
    else reconnectNow = true;
  };
  const random = deps.backoff?.random ?? Math.random;
  const reconnectDelay = (): number => {
    const resumed = Date.now() - resumedAt < RESUMED_RECONNECT_MS;
    const now = reconnectNow && resumed;
    reconnectNow = false;
    if (now) return 0;
    return resumed ? RESUMED_RETRY_MS + Math.floor(random() * RESUMED_RETRY_MS) : backoff.next();
  };
  process.on('SIGCONT', onResume);

  try {
    while (!signal.aborted) {
      let reason: string;
      try {
        // Waits for a rotation write in flight, then uses whatever token is in memory.
        const token = await rotation.currentToken();
        // held is read at each connect: the coordinator sorts out which attempts are still current.
        const helloDrainReason = drain.localDrain?.reason;
        const session = await openSession({
          url: config.url,
          token,
          hello: { ...hello, held: jobs?.heldAttempts() ?? [], ...(helloDrainReason ? { drainReason: helloDrainReason } : {}) },
          logger,
          signal,
          handshakeTimeoutMs: deps.handshakeTimeoutMs,
        });
        connections++;
        const { welcome } = session;
        state.connected(welcome);
        checkMinimum(welcome.minRunnerVersion);
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
        const end = await runConnectedSession(
          { session, state, rotation, logger, jobs, metrics: deps.metrics, drain, helloDrainReason, onMinRunnerVersion: checkMinimum },
          signal,
        );
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
      const delayMs = reconnectDelay();
      state.reconnecting();
      logger.info({ attempt: backoff.attempt, delayMs, reason }, 'reconnecting');
      cutBackoff = new AbortController();
      await sleep(delayMs, AbortSignal.any([signal, cutBackoff.signal]));
      cutBackoff = null;
      if (signal.aborted) break;
    }
  } finally {
    process.off('SIGCONT', onResume);
    outer.removeEventListener('abort', onStop);
    deps.forceStop?.removeEventListener('abort', onForce);
    stopWatch.abort();
    // Never leave with a rotation half done: the confirm must follow the write.
    await rotation.idle();
    await minimum.idle();
    await watch;
  }
  return { reason: exit.goal ?? 'stopped', connections };
}

/** An abort reason the CLI set ("SIGTERM"), else `fallback`; never the DOMException text of a bare abort(). */
function describeReason(reason: unknown, fallback: string): string {
  return typeof reason === 'string' && reason !== '' ? reason : fallback;
}

function describeEnd(end: SessionEnd): string {
  if (end.heartbeats === 'stale') return 'coordinator stopped answering heartbeats';
  return `closed with code ${end.close.code}${end.close.reason ? `: ${end.close.reason}` : ''}`;
}
