import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { resolveConfigPath } from '../config/paths.js';
import { runAgent } from '../agent.js';
import { ConfigError, ProtocolMismatchError, RevokedError } from '../errors.js';
import { createLogger } from '../log.js';
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

  // First signal: stop (close the socket with 1000). Second: give up waiting.
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!controller.signal.aborted) {
      logger.info({ signal }, 'stopping');
      controller.abort();
      return;
    }
    logger.warn({ signal }, 'second signal: exiting now');
    process.exit(EXIT.ERROR);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    const result = await runAgent({ config, configPath, logger }, controller.signal);
    logger.info({ connections: result.connections }, 'stopped');
    return EXIT.OK;
  } catch (err) {
    if (err instanceof RevokedError) {
      logger.error({ code: err.reason, reason: err.message }, REVOKED_MESSAGE);
      return EXIT.REVOKED;
    }
    if (err instanceof ProtocolMismatchError) {
      logger.fatal({ code: err.code, reason: err.message }, `protocol mismatch: ${err.message}; upgrade rbtk-runner or the coordinator`);
      return EXIT.ERROR;
    }
    logger.fatal({ err: (err as Error).message }, 'runner failed');
    return EXIT.ERROR;
  }
}
