import { DEFAULT_LISTEN } from '@rbtk/protocol';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseListen, type ListenAddress } from '../listen.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import { DEV_POOL, runDevFleet } from './fleet.js';

interface DevFlags {
  dataDir: string;
  listen: ListenAddress;
  logLevel: LogLevel;
}

function listenArg(value: string): ListenAddress {
  try {
    return parseListen(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** `rbtk-coordinator dev`: the one-command local fleet (`npm run dev` runs it). */
export function addDevCommand(program: Command): void {
  program
    .command('dev')
    .description(
      `A local fleet in one command: a coordinator on the defaults, a "${DEV_POOL}" pool and one rbtk-runner registered to it ` +
        '(docker and shell executors when Docker answers, shell otherwise). Ctrl-C drains the runner and stops everything.',
    )
    .addOption(new Option('--data-dir <dir>', 'state: rbtk.db, admin.token and the dev runner\'s runner.yaml (reused on the next run)').default('.data'))
    .addOption(
      new Option('--listen <host:port>', 'address to listen on (port 0: any free port)').argParser(listenArg).default(parseListen(DEFAULT_LISTEN), DEFAULT_LISTEN),
    )
    .addOption(new Option('--log-level <level>', 'log level').env('RBTK_LOG_LEVEL').choices(LOG_LEVELS).default('info'))
    .action(async (flags: DevFlags) => {
      const code = await runDevFleet({ dataDir: flags.dataDir, host: flags.listen.host, port: flags.listen.port, logLevel: flags.logLevel });
      process.exit(code);
    });
}
