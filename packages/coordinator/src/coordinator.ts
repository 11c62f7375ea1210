import { mkdirSync } from 'node:fs';
import { createServer, type Server, type ServerOptions } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { AgentVersion, coerceError, ROUTES } from '@rbtk/protocol';
import { ADMIN_TOKEN_FILE, bootstrap } from './bootstrap.js';
import type { CoordinatorContext } from './context.js';
import { answerClientError } from './http/client-error.js';
import { createRequestListener } from './http/server.js';
import { DEFAULT_RECONCILE_INTERVAL_MS } from './hosted/hosted-pools.js';
import { createHostedPools } from './hosted/start.js';
import { JobService } from './jobs/job-service.js';
import { runJobTimeoutLoop } from './jobs/timeout-loop.js';
import { runLivenessLoop } from './liveness.js';
import { createLogger } from './log.js';
import { CoordinatorMetrics } from './metrics/coordinator-metrics.js';
import { type Coordinator, type CoordinatorOptions, defaultPingInterval, EXIT_STORAGE_FAILED, resolveLimits, resolveTimings } from './options.js';
import { SqliteStore } from './store/sqlite/sqlite-store.js';
import { createRunnerSocketServer } from './ws/runner-socket.js';
import { SessionRegistry } from './ws/sessions.js';
import { createSubmitterSocketServer } from './ws/submitter-socket.js';
import { routeUpgrades } from './ws/upgrade.js';

export const DATABASE_FILE = 'rbtk.db';
const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_PORT = 7420;
/** How long stop() lets in-flight HTTP requests finish before cutting connections. */
const HTTP_CLOSE_GRACE_MS = 2000;
/**
 * Idle keep-alive connections stay open this long: past the idle timeouts of the usual proxies
 * (nginx, cloud load balancers: 60 s), so a proxy never reuses a connection just as we close it (a 502).
 */
const HTTP_KEEP_ALIVE_TIMEOUT_MS = 65_000;

/**
 * Starts the coordinator: opens and migrates the store, bootstraps the
 * default project and admin token, requeues attempts orphaned by a previous
 * run, serves REST, the runner WebSocket and the submitter WebSocket on one
 * port, and runs the liveness, job-timeout and ping loops until stop().
 */
export async function startCoordinator(options: CoordinatorOptions): Promise<Coordinator> {
  const timings = resolveTimings(options);
  const limits = resolveLimits(options);
  if (options.minRunnerVersion !== undefined && !AgentVersion.safeParse(options.minRunnerVersion).success) {
    throw new RangeError(`minRunnerVersion must be a semantic version such as 1.4.0, got ${JSON.stringify(options.minRunnerVersion)}`);
  }
  const now = options.now ?? Date.now;
  const log = options.logger ?? createLogger({ level: options.logLevel ?? 'info' });
  const dataDir = path.resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });

  const store = SqliteStore.open(path.join(dataDir, DATABASE_FILE));
  let server: Server | undefined;
  try {
    await bootstrap({ store, log, dataDir, now: now() });
    const sessions = new SessionRegistry();
    const metrics = new CoordinatorMetrics({ store, sessions, now }, { jobCountsMaxAgeMs: options.metricsRefreshMs, token: options.metricsToken });
    store.observeWalSyncs((seconds) => metrics.walSync.observe(seconds));
    store.onWalSyncFailure((err) => {
      log.fatal(
        { err: err.message, code: err.code },
        'could not sync the database WAL to disk: what was not yet acknowledged may be lost; stopping, so that a restart recovers from the disk',
      );
      (options.onFatal ?? (() => process.exit(EXIT_STORAGE_FAILED)))(err);
    });
    const jobs = new JobService({ store, log, now, acceptTimeoutMs: timings.acceptTimeoutMs, maxLogBytes: limits.maxLogBytes, metrics });
    const ctx: CoordinatorContext = { store, sessions, jobs, log, metrics, timings, now, minRunnerVersion: options.minRunnerVersion };
    // Attempts left on runners that are gone are requeued; queued jobs wait for their runners' hello.
    await jobs.resume();
    // Members call the URL once it listens; passes start after that (the loop below, or a hello).
    const hosted = await createHostedPools(ctx, dataDir, () => url, {
      dockerAgent: options.hostedDockerAgent ?? 'image',
      providers: options.hostedProviders,
      ...(options.hostedDockerTimeouts ? { dockerTimeouts: options.hostedDockerTimeouts } : {}),
    });
    const sockets = createRunnerSocketServer(ctx, { helloTimeoutMs: limits.helloTimeoutMs });
    const submitters = createSubmitterSocketServer(ctx, options.submitterLimits);
    server = createServer(httpServerOptions(limits.httpRequestTimeoutMs), createRequestListener(ctx));
    server.on('clientError', answerClientError);
    server.on('upgrade', routeUpgrades({ [ROUTES.jobsSocket]: submitters }, sockets));
    const address = await listen(server, options.host ?? DEFAULT_HOST, options.port ?? DEFAULT_PORT);
    const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;

    const abort = new AbortController();
    const pingInterval = options.pingIntervalMs ?? defaultPingInterval(timings.heartbeatIntervalMs);
    const loops = [
      runLivenessLoop(
        { ...timings, store, sessions: ctx.sessions, log, now, onOffline: (id) => jobs.runnerOffline(id), onReaped: () => jobs.routingChanged() },
        abort.signal,
      ),
      runJobTimeoutLoop({ jobs, log }, abort.signal),
      sockets.runPingLoop(pingInterval, abort.signal),
      submitters.runPingLoop(pingInterval, abort.signal),
      hosted.runLoop(options.hostedReconcileIntervalMs ?? DEFAULT_RECONCILE_INTERVAL_MS, abort.signal),
    ];
    log.info({ url, dataDir, ...timings, maxLogBytes: limits.maxLogBytes, ...(options.minRunnerVersion ? { minRunnerVersion: options.minRunnerVersion } : {}) }, 'listening');

    const httpServer = server;
    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        log.info('stopping');
        abort.abort();
        const closed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        httpServer.closeIdleConnections();
        jobs.stop();
        await hosted.stop();
        await Promise.all([sockets.close(), submitters.close()]);
        await Promise.allSettled(loops);
        const timer = setTimeout(() => httpServer.closeAllConnections(), HTTP_CLOSE_GRACE_MS);
        await closed;
        clearTimeout(timer);
        await store.close();
        log.info('stopped');
      })());

    return { url, host: address.address, port: address.port, dataDir, adminTokenFile: path.join(dataDir, ADMIN_TOKEN_FILE), stop };
  } catch (err) {
    server?.close();
    await store.close();
    throw coerceError(err);
  }
}

/**
 * Explicit timeouts, not node's defaults (5 minutes for a request): a client that sends its headers or
 * body a byte at a time would hold a connection and its memory that long. They time the HTTP exchange
 * only; a socket leaves them at its upgrade, so runner and submitter WebSockets live on.
 */
function httpServerOptions(requestTimeoutMs: number): ServerOptions {
  return {
    headersTimeout: requestTimeoutMs,
    requestTimeout: requestTimeoutMs,
    keepAliveTimeout: HTTP_KEEP_ALIVE_TIMEOUT_MS,
    // node checks the two request timeouts this often (default 30 s, as long as the timeout itself).
    connectionsCheckingInterval: Math.min(5_000, requestTimeoutMs),
  };
}

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}
