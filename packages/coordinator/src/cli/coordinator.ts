#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  AgentVersion,
  coerceError,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_LISTEN,
  DEFAULT_OFFLINE_AFTER_MS,
  DEFAULT_REAP_AFTER_MS,
  DEFAULT_TOKEN_ROTATION_MS,
  formatDuration,
  formatMemory,
  parseDuration,
  parseMemory,
} from '@rbtk/protocol';
import { startCoordinator } from '../coordinator.js';
import { addDevCommand } from '../dev/command.js';
import { DEFAULT_RECONCILE_INTERVAL_MS } from '../hosted/hosted-pools.js';
import { DEFAULT_JOB_COUNTS_MAX_AGE_MS } from '../metrics/job-counts.js';
import { DEFAULT_ACCEPT_TIMEOUT_MS, DEFAULT_MAX_LOG_BYTES } from '../options.js';
import { parseListen, type ListenAddress } from '../listen.js';
import { createLogger, LOG_LEVELS, type LogLevel } from '../log.js';

/** Usage errors (bad flags or values): distinct from runtime failures (1). */
const EXIT_USAGE = 2;

interface ServeFlags {
  listen: ListenAddress;
  dataDir?: string;
  offlineAfter: number;
  reapAfter: number;
  heartbeatInterval: number;
  tokenRotation: number;
  acceptTimeout: number;
  maxLogBytes: number;
  reconcileInterval: number;
  hostedDockerAgent: 'image' | 'host';
  minRunnerVersion?: string;
  metricsRefresh: number;
  metricsToken?: string;
  logLevel: LogLevel;
}

function durationArg(min: number) {
  return (value: string): number => {
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
    if (ms < min) throw new InvalidArgumentError(`must be at least ${formatDuration(min)}`);
    return ms;
  };
}

/** A byte size as Docker writes memory (`64m`, `64MiB`, `1g`, or bytes); 0 means no limit. */
function bytesArg(value: string): number {
  try {
    return parseMemory(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message.replace('memory size', 'size'));
  }
}

function metricsTokenArg(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('must not be empty');
  if (/\s/.test(value)) throw new InvalidArgumentError('must not contain spaces (it goes in an Authorization header)');
  return value;
}

function versionArg(value: string): string {
  const parsed = AgentVersion.safeParse(value);
  if (!parsed.success) throw new InvalidArgumentError('must be a semantic version such as 1.4.0');
  return parsed.data;
}

function listenArg(value: string): ListenAddress {
  try {
    return parseListen(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function durationOption(flags: string, env: string, description: string, defaultMs: number, min: number): Option {
  return new Option(flags, description).env(env).argParser(durationArg(min)).default(defaultMs, formatDuration(defaultMs));
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** systemd's StateDirectory= (first entry), so the unit needs no --data-dir. */
function defaultDataDir(): string {
  return process.env.STATE_DIRECTORY?.split(':')[0] || '.data';
}

async function serve(flags: ServeFlags): Promise<void> {
  const log = createLogger({ level: flags.logLevel });
  let coordinator;
  try {
    coordinator = await startCoordinator({
      dataDir: flags.dataDir ?? defaultDataDir(),
      host: flags.listen.host,
      port: flags.listen.port,
      offlineAfterMs: flags.offlineAfter,
      reapAfterMs: flags.reapAfter,
      heartbeatIntervalMs: flags.heartbeatInterval,
      tokenRotationMs: flags.tokenRotation,
      acceptTimeoutMs: flags.acceptTimeout,
      maxLogBytes: flags.maxLogBytes,
      hostedReconcileIntervalMs: flags.reconcileInterval,
      hostedDockerAgent: flags.hostedDockerAgent,
      minRunnerVersion: flags.minRunnerVersion,
      metricsRefreshMs: flags.metricsRefresh,
      metricsToken: flags.metricsToken,
      logger: log,
    });
  } catch (err) {
    log.fatal({ err: coerceError(err) }, 'coordinator failed to start');
    process.exit(1);
  }
  const running = coordinator;
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    signalled = true;
    log.info({ signal }, 'signal received: stopping gracefully (send it again to exit at once)');
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: coerceError(err) }, 'graceful stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

function buildProgram(): Command {
  const program = new Command('rbtk-coordinator')
    .description('The rbtk coordinator: pools, runner registration, tokens, liveness, audit and jobs over REST and WebSocket.')
    .version(version())
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('serve')
    .description('Serve the REST API, the runner WebSocket and the submitter WebSocket until SIGTERM/SIGINT.')
    .addOption(
      new Option('--listen <host:port>', 'address to listen on (port 0: any free port)')
        .env('RBTK_LISTEN')
        .argParser(listenArg)
        .default(parseListen(DEFAULT_LISTEN), DEFAULT_LISTEN),
    )
    .addOption(
      new Option('--data-dir <dir>', 'directory for rbtk.db and admin.token (default: $STATE_DIRECTORY, else ./.data)').env(
        'RBTK_DATA_DIR',
      ),
    )
    .addOption(durationOption('--offline-after <duration>', 'RBTK_OFFLINE_AFTER', 'mark a runner OFFLINE after this long without a heartbeat', DEFAULT_OFFLINE_AFTER_MS, 1))
    .addOption(durationOption('--reap-after <duration>', 'RBTK_REAP_AFTER', 'delete a runner after this long without a heartbeat', DEFAULT_REAP_AFTER_MS, 1))
    .addOption(
      durationOption('--heartbeat-interval <duration>', 'RBTK_HEARTBEAT_INTERVAL', 'how often runners are told to heartbeat', DEFAULT_HEARTBEAT_INTERVAL_MS, 1),
    )
    .addOption(
      durationOption('--token-rotation <duration>', 'RBTK_TOKEN_ROTATION', 'rotate runner tokens this often (0s: on every heartbeat)', DEFAULT_TOKEN_ROTATION_MS, 0),
    )
    .addOption(
      durationOption('--accept-timeout <duration>', 'RBTK_ACCEPT_TIMEOUT', 'give a job to another runner when its runner does not accept it within this', DEFAULT_ACCEPT_TIMEOUT_MS, 1),
    )
    .addOption(
      new Option('--max-log-bytes <size>', "log bytes kept per job attempt (64m, 1g, bytes; 0: no limit): the rest is acknowledged and dropped, after a marker in the job's log")
        .env('RBTK_MAX_LOG_BYTES')
        .argParser(bytesArg)
        .default(DEFAULT_MAX_LOG_BYTES, formatMemory(DEFAULT_MAX_LOG_BYTES).replace(' ', '')),
    )
    .addOption(
      durationOption('--reconcile-interval <duration>', 'RBTK_RECONCILE_INTERVAL', 'how often hosted pools are reconciled (also at once after a claim or a spec change)', DEFAULT_RECONCILE_INTERVAL_MS, 100),
    )
    .addOption(
      new Option('--hosted-docker-agent <where>', "docker provider: the agent comes with the pool's image, or from this host (its node and rbtk-runner, bind-mounted read-only: dev and tests)")
        .env('RBTK_HOSTED_DOCKER_AGENT')
        .choices(['image', 'host'])
        .default('image'),
    )
    .addOption(
      new Option('--min-runner-version <version>', 'runners older than this drain, finish their jobs and exit 75 to be restarted (upgraded)')
        .env('RBTK_MIN_RUNNER_VERSION')
        .argParser(versionArg),
    )
    .addOption(
      durationOption('--metrics-refresh <duration>', 'RBTK_METRICS_REFRESH', "how old /metrics' job counts may be (0s: fresh at every scrape)", DEFAULT_JOB_COUNTS_MAX_AGE_MS, 0),
    )
    .addOption(
      new Option('--metrics-token <token>', 'require "Authorization: Bearer <token>" on /metrics (default: open, like the health checks)')
        .env('RBTK_METRICS_TOKEN')
        .argParser(metricsTokenArg),
    )
    .addOption(new Option('--log-level <level>', 'log level').env('RBTK_LOG_LEVEL').choices(LOG_LEVELS).default('info'))
    .action(serve);
  addDevCommand(program);
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
  console.error(`rbtk-coordinator: ${coerceError(err).message}`);
  process.exit(1);
}
