import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { resolveConfigPath } from '../config/paths.js';
import { runAgent } from '../agent.js';
import { AlreadyRunningError, ConfigError, ProtocolMismatchError, RevokedError } from '../errors.js';
import { checkAirgappedNetwork } from '../executors/docker-network.js';
import { createLogger } from '../log.js';
import { installedPackageJson, Wakeup } from '../upgrade.js';
import { EXIT, REVOKED_MESSAGE } from './exit-codes.js';

export function addRunCommand(program: Command): void {
  program
    .command('run')
    .description('run the runner in the foreground: connect to the coordinator, heartbeat, rotate the token')
    .option('--config <path>', 'runner.yaml (default $RBTK_RUNNER_CONFIG or /etc/rbtk-runner/runner.yaml)')
    .action(async (flags: { config?: string }) => {
      process.exit(await run(flags.config));
    });
}

async function run(flag: string | undefined): Promise<number> {
  const pretty = process.stdout.isTTY === true;
  const configPath = resolveConfigPath(flag);
  let config;
  try {
    config = await loadConfig(configPath);
  } catch (err) {
    const logger = createLogger({ pretty });
    if (err instanceof ConfigError) {
      logger.fatal({ path: err.path, key: err.key, code: err.code }, `invalid config: ${err.message}`);
      return EXIT.CONFIG;
    }
    logger.fatal({ err: (err as Error).message }, 'cannot load the config');
    return EXIT.CONFIG;
  }
  const logger = createLogger({ level: config.log_level, pretty });
  try {
    const warning = await checkAirgappedNetwork(config, configPath);
    if (warning) logger.warn({ key: 'docker_network', network: config.docker_network }, warning);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    logger.fatal({ path: err.path, key: err.key, code: err.code }, `invalid config: ${err.message}`);
    return EXIT.CONFIG;
  }

  // First signal: drain, let the jobs finish within shutdown_timeout, exit 0. Second: stop the jobs now,
  // report them cancelled, exit. Third: exit at once. SIGHUP: look for an installed upgrade now.
  const graceful = new AbortController();
  const forceful = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!graceful.signal.aborted) {
      logger.info({ signal, shutdownTimeout: config.shutdown_timeout }, 'stopping: draining, running jobs may finish (send it again to stop them now)');
      graceful.abort(signal);
    } else if (!forceful.signal.aborted) {
      logger.warn({ signal }, 'second signal: stopping the running jobs now (send it again to exit at once)');
      forceful.abort(`a second ${signal} asked it to stop at once`);
    } else {
      logger.warn({ signal }, 'third signal: exiting now');
      process.exit(EXIT.ERROR);
    }
  };
  const wakeup = new Wakeup();
  const onHangup = () => {
    logger.info('SIGHUP: checking for an installed upgrade');
    wakeup.wake();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onHangup);

  try {
    const result = await runAgent(
      { config, configPath, logger, forceStop: forceful.signal, upgradeWatch: { packageJson: installedPackageJson(), wakeup } },
      graceful.signal,
    );
    if (result.reason === 'upgrade') {
      logger.info({ connections: result.connections, exitCode: EXIT.UPGRADE }, 'drained for an upgrade: exiting to be restarted');
      return EXIT.UPGRADE;
    }
    logger.info({ connections: result.connections }, 'stopped');
    return EXIT.OK;
  } catch (err) {
    if (err instanceof RevokedError) {
      logger.error({ code: err.reason, reason: err.message }, REVOKED_MESSAGE);
      return EXIT.REVOKED;
    }
    if (err instanceof AlreadyRunningError) {
      logger.fatal({ code: err.code }, err.message);
      return EXIT.USAGE;
    }
    if (err instanceof ProtocolMismatchError) {
      logger.fatal({ code: err.code, reason: err.message }, `protocol mismatch: ${err.message}; upgrade rbtk-runner or the coordinator`);
      return EXIT.ERROR;
    }
    logger.fatal({ err: (err as Error).message }, 'runner failed');
    return EXIT.ERROR;
  }
}
