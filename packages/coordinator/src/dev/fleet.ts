import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { coerceError, EXIT_REVOKED, EXIT_UPGRADE, RbtkError, type ExecutorName } from '@rbtk/protocol';
import { ApiClient } from '../client/api-client.js';
import { startCoordinator } from '../coordinator.js';
import { createLogger, type Logger, type LogLevel } from '../log.js';
import type { Coordinator } from '../options.js';
import { formatBanner } from './banner.js';
import { dockerReachable } from './docker.js';
import { findRunnerBin, runRunnerCommand, RunnerDaemon, type DaemonExit } from './runner-process.js';

export const DEV_POOL = 'dev';
export const DEV_RUNNER_NAME = 'dev-runner';
/** Where the dev runner's runner.yaml lives, under the data directory. */
export const DEV_RUNNER_CONFIG = join('dev-runner', 'runner.yaml');
/** The terminal and npm may both deliver the same Ctrl-C: signals this close together count once. */
const SAME_SIGNAL_MS = 500;
const ONLINE_TIMEOUT_MS = 60_000;
/** Before starting a runner that exited 75 again (the unit's RestartSec= is 5s). */
const RESTART_DELAY_MS = 1000;

export interface DevFleetOptions {
  /** Coordinator state, the admin token and the dev runner's files; default ./.data. */
  dataDir: string;
  host: string;
  port: number;
  pool?: string;
  logLevel?: LogLevel;
  /** Where the printed command lines are meant to be run; default process.cwd(). */
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Where the banner goes; default stdout. */
  write?: (text: string) => void;
}

/** Thrown into the startup when a signal asked to stop before the fleet was up. */
class StopRequested extends Error {}

/** Just the fields of `rbtk-runner status --json` the dev fleet looks at. */
interface RunnerStatusJson {
  url: string;
  runnerId: string;
  name: string;
  pool: string | null;
  executors: string[];
  running: boolean;
  daemon: { pid?: number } | null;
}

interface Registration {
  runnerId: string;
  name: string;
  reused: boolean;
}

/**
 * `rbtk-coordinator dev` (and `npm run dev`): a coordinator in this process
 * on the embedded defaults, a `dev` pool, and one `rbtk-runner` daemon as a
 * child process registered into it, reusing the runner.yaml of an earlier run
 * when it still fits. Prints where everything is and a job line that works;
 * the first SIGINT/SIGTERM/SIGHUP drains the runner, then stops it and the
 * coordinator; a second has the runner stop its jobs; a third kills it.
 * Resolves with the exit code.
 */
export async function runDevFleet(options: DevFleetOptions): Promise<number> {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const dataDir = resolve(cwd, options.dataDir);
  const pool = options.pool ?? DEV_POOL;
  const log = createLogger({ level: options.logLevel ?? 'info' });
  const devLog = log.child({ component: 'dev' });

  let daemon: RunnerDaemon | undefined;
  let signals = 0;
  let lastSignalAt = 0;
  let requestStop!: () => void;
  const stopRequested = new Promise<'stop'>((resolveStop) => (requestStop = () => resolveStop('stop')));
  const onSignal = (signal: NodeJS.Signals) => {
    const now = Date.now();
    if (signals > 0 && now - lastSignalAt < SAME_SIGNAL_MS) return;
    lastSignalAt = now;
    signals += 1;
    if (signals === 1) {
      devLog.info({ signal }, 'stopping: the runner drains and stops first, then the coordinator (signal again: the runner stops its jobs)');
      requestStop();
    } else if (signals === 2) {
      devLog.warn({ signal }, 'second signal: the runner stops its jobs now (signal again: kill it)');
      daemon?.kill('SIGTERM');
    } else {
      devLog.warn({ signal }, 'third signal: killing the runner');
      daemon?.kill('SIGKILL');
    }
  };
  const handled: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of handled) process.on(s, onSignal);

  /** Between startup steps: a signal during one ends the startup after it (nothing is left half done). */
  const checkpoint = () => {
    if (signals > 0) throw new StopRequested();
  };
  /** Awaits p, unless a stop is asked for first: only for waits that leave nothing behind. */
  const unlessStopped = async <T>(p: Promise<T>): Promise<T> => {
    p.catch(() => undefined); // when the stop wins, p's own failure (the runner stopped) is expected
    const winner = await Promise.race([p, stopRequested]);
    if (winner === 'stop') throw new StopRequested();
    return winner as T;
  };

  let coordinator: Coordinator | undefined;
  let api: ApiClient | undefined;
  let exitCode = 0;
  try {
    const bin = findRunnerBin(env);
    coordinator = await startCoordinator({ dataDir, host: options.host, port: options.port, logger: log });
    checkpoint();
    const url = coordinator.url;
    const token = await readAdminToken(coordinator);
    api = new ApiClient({ url, token, timeoutMs: 10_000 });
    await ensurePool(api, pool, devLog);
    checkpoint();

    const docker = await unlessStopped(dockerReachable());
    // Shell always: the printed hello line runs as a host process.
    const executors: ExecutorName[] = docker.ok ? ['docker', 'shell'] : ['shell'];
    if (docker.ok) devLog.info('Docker Engine reachable: the dev runner offers the docker and shell executors');
    else devLog.info({ reason: docker.reason }, 'no Docker Engine reachable: the dev runner offers the shell executor only');

    const configPath = join(dataDir, DEV_RUNNER_CONFIG);
    const runnerEnv = runnerEnvironment(env);
    const registration = await ensureRegistration({ api, bin, configPath, url, pool, executors, env: runnerEnv, log: devLog });
    checkpoint();

    for (let start = 0; ; start++) {
      daemon = new RunnerDaemon(bin, configPath, runnerEnv);
      await unlessStopped(waitOnline(api, registration.runnerId, daemon));
      if (start === 0) {
        write(
          formatBanner({
            url,
            dataDir,
            tokenFile: coordinator.adminTokenFile,
            pool,
            runnerId: registration.runnerId,
            runnerName: registration.name,
            runnerPid: daemon.pid,
            executors,
            reused: registration.reused,
            cwd,
          }),
        );
      } else {
        devLog.info({ runnerId: registration.runnerId, pid: daemon.pid }, 'the dev runner is back online');
      }
      const exit = await Promise.race([daemon.exited, stopRequested]);
      if (exit === 'stop') break;
      if (exit.code === EXIT_UPGRADE) {
        devLog.info({ code: exit.code }, 'the runner drained for a pending upgrade: starting it again, as systemd would');
        await unlessStopped(new Promise((r) => setTimeout(r, RESTART_DELAY_MS)));
        continue;
      }
      devLog.error(
        { code: exit.code, signal: exit.signal },
        exit.code === EXIT_REVOKED
          ? 'the dev runner was revoked: stopping (the next run registers a new one)'
          : 'the dev runner exited on its own: stopping',
      );
      exitCode = 1;
      break;
    }
  } catch (err) {
    if (!(err instanceof StopRequested)) {
      devLog.fatal({ err: coerceError(err).message }, 'dev fleet failed');
      exitCode = 1;
    }
  } finally {
    if (daemon?.running) {
      daemon.kill('SIGTERM');
      const exit: DaemonExit = await daemon.exited;
      devLog.info({ code: exit.code, signal: exit.signal }, 'runner stopped');
      if (exit.code !== 0) exitCode = 1;
    }
    await api?.close().catch(() => undefined);
    await coordinator?.stop();
    for (const s of handled) process.off(s, onSignal);
  }
  return exitCode;
}

async function readAdminToken(coordinator: Coordinator): Promise<string> {
  try {
    return (await readFile(coordinator.adminTokenFile, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    throw new Error(
      `${coordinator.adminTokenFile} is missing, but the database in ${coordinator.dataDir} already has its admin token: ` +
        `remove ${coordinator.dataDir} to start over`,
    );
  }
}

async function ensurePool(api: ApiClient, name: string, log: Logger): Promise<void> {
  try {
    await api.getPool(name);
    return;
  } catch (err) {
    if (!(err instanceof RbtkError) || err.status !== 404) throw err;
  }
  await api.createPool({ name, type: 'self-hosted', tags: { env: 'dev' } });
  log.info({ pool: name }, 'created the dev pool');
}

/** The runner gets our environment (DOCKER_HOST and the like), minus what would move its files. */
function runnerEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { STATE_DIRECTORY: _state, RBTK_RUNNER_CONFIG: _config, RBTK_REGISTRATION_TOKEN: _token, ...rest } = env;
  return rest;
}

interface RegistrationContext {
  api: ApiClient;
  bin: string;
  configPath: string;
  url: string;
  pool: string;
  executors: ExecutorName[];
  env: NodeJS.ProcessEnv;
  log: Logger;
}

/**
 * Reuses the dev runner's runner.yaml when rbtk-runner itself reads it as
 * valid and it still fits (this coordinator's URL, the pool, the executors
 * Docker allows now, a runner the coordinator still knows); registers a new
 * runner (and revokes the one it replaces) otherwise.
 */
async function ensureRegistration(ctx: RegistrationContext): Promise<Registration> {
  const { api, bin, configPath, log } = ctx;
  let why: string | undefined;
  let replaced: string | undefined;
  if (existsSync(configPath)) {
    const status = await runRunnerCommand(bin, ['status', '--config', configPath, '--json'], ctx.env, 30_000);
    const report = status.code === 0 || status.code === 3 ? parseStatus(status.stdout) : undefined;
    if (!report) {
      why = `rbtk-runner cannot use ${configPath} (exit ${status.code}): ${status.stderr.trim().split('\n')[0] ?? ''}`;
    } else {
      if (report.running) {
        throw new Error(`an rbtk-runner already runs with ${configPath} (pid ${report.daemon?.pid ?? '?'}): stop it first`);
      }
      replaced = report.runnerId;
      why = mismatch(report, ctx);
      if (!why) {
        try {
          await api.getRunner(report.runnerId);
          return { runnerId: report.runnerId, name: report.name, reused: true };
        } catch (err) {
          if (!(err instanceof RbtkError) || err.status !== 404) throw err;
          why = `the coordinator no longer knows runner ${report.runnerId} (revoked or reaped)`;
          replaced = undefined;
        }
      }
    }
    log.info({ reason: why }, 'registering the dev runner again');
  }
  if (replaced) {
    // The runner.yaml being replaced was this fleet's own: leave no stale runner behind.
    await api.revokeRunner(replaced).then(
      () => log.info({ runnerId: replaced }, 'revoked the dev runner it replaces'),
      () => undefined,
    );
  }
  const registrationToken = await api.mintRegistrationToken(ctx.pool, { ttl: '10m', uses: 1 });
  const args = ['register', '--name', DEV_RUNNER_NAME, '--config', configPath, '--json'];
  for (const e of ctx.executors) args.push('--executor', e);
  if (existsSync(configPath)) args.push('--force');
  // The registration token travels in the environment, not on a command line others can read.
  const res = await runRunnerCommand(bin, args, { ...ctx.env, RBTK_URL: ctx.url, RBTK_REGISTRATION_TOKEN: registrationToken.token! });
  if (res.code !== 0) throw new Error(`rbtk-runner register failed (exit ${res.code}): ${res.stderr.trim()}`);
  const shown = JSON.parse(res.stdout) as { runnerId: string; name: string };
  log.info({ runnerId: shown.runnerId, configPath, executors: ctx.executors }, 'registered the dev runner');
  return { runnerId: shown.runnerId, name: shown.name, reused: false };
}

function parseStatus(stdout: string): RunnerStatusJson | undefined {
  try {
    const report = JSON.parse(stdout) as RunnerStatusJson;
    return typeof report.runnerId === 'string' && typeof report.url === 'string' ? report : undefined;
  } catch {
    return undefined;
  }
}

/** Why a valid runner.yaml does not fit this fleet, if it does not. */
function mismatch(report: RunnerStatusJson, ctx: RegistrationContext): string | undefined {
  if (stripSlash(report.url) !== stripSlash(ctx.url)) return `it points at ${report.url}, this coordinator is ${ctx.url}`;
  if (report.pool !== ctx.pool) return `it is in pool ${report.pool ?? '(none)'}, not ${ctx.pool}`;
  const have = [...report.executors].sort().join(',');
  const want = [...ctx.executors].sort().join(',');
  if (have !== want) return `it offers ${have}; with Docker ${ctx.executors.includes('docker') ? 'reachable' : 'unreachable'} now the dev runner offers ${want}`;
  return undefined;
}

function stripSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

/** Resolves once the runner's session is up at the coordinator; rejects if the daemon exits first. */
async function waitOnline(api: ApiClient, runnerId: string, daemon: RunnerDaemon): Promise<void> {
  let exited: DaemonExit | undefined;
  void daemon.exited.then((e) => (exited = e));
  const deadline = Date.now() + ONLINE_TIMEOUT_MS;
  for (;;) {
    if (exited) throw new Error(`rbtk-runner exited (code ${exited.code}, signal ${exited.signal}) before it came online; its log is above`);
    const runner = await api.getRunner(runnerId).catch(() => undefined);
    if (runner?.connected && runner.status !== 'OFFLINE') return;
    if (Date.now() > deadline) throw new Error(`the dev runner did not come online within ${ONLINE_TIMEOUT_MS / 1000} s; its log is above`);
    await Promise.race([new Promise((r) => setTimeout(r, 150)), daemon.exited]);
  }
}
