import { RbtkError, parseToken, type ExecutorName, type Labels } from '@rbtk/protocol/runner';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { resolveConfigPath } from '../config/paths.js';
import { AlreadyRegisteredError, DaemonRunningError, UsageError } from '../errors.js';
import { EXIT } from './exit-codes.js';

interface RegisterFlags {
  url: string;
  token: string;
  name?: string;
  label?: Labels;
  airgapped?: boolean;
  maxJobs?: number;
  executor?: ExecutorName[];
  config?: string;
  force?: boolean;
  json?: boolean;
}

export function addRegisterCommand(program: Command): void {
  program
    .command('register')
    .description('exchange a registration token for a runner id and token, and write runner.yaml (mode 0600)')
    .addOption(new Option('--url <url>', "the coordinator's URL").env('RBTK_URL').makeOptionMandatory())
    .addOption(new Option('--token <token>', 'registration token (rbtk_reg_...)').env('RBTK_REGISTRATION_TOKEN').makeOptionMandatory())
    .option('--name <name>', 'runner name (default: the host name)')
    .option('--label <key=value>', 'a label for this runner; repeatable', parseLabel)
    .option('--airgapped', 'register in air-gapped mode (required by air-gapped pools)')
    .option('--max-jobs <n>', 'jobs this runner may run at once (default 1)', parsePositiveInt)
    .option('--executor <docker|shell>', 'an executor this runner offers; repeatable (default docker)', parseExecutor)
    .addOption(new Option('--config <path>', 'where to write runner.yaml (default /etc/rbtk-runner/runner.yaml)').env('RBTK_RUNNER_CONFIG'))
    .option('--force', 'replace an existing registration in the config file (refused, exit 2, while the daemon runs on it)')
    .option('--json', 'print the registration (without the token) as JSON instead of the runner id')
    .action(async (flags: RegisterFlags) => {
      process.exitCode = await register(flags);
    });
}

async function register(flags: RegisterFlags): Promise<number> {
  if (parseToken(flags.token)?.kind !== 'reg') {
    process.stderr.write('error: --token must be a registration token (rbtk_reg_...); mint one with "rbtk pool token POOL"\n');
    return EXIT.USAGE;
  }
  const configPath = resolveConfigPath(flags.config);
  try {
    // undici is loaded by the one command that needs it, not by every rbtk-runner start.
    const { registerRunner } = await import('../register-runner.js');
    const { response, warning } = await registerRunner({
      url: flags.url,
      registrationToken: flags.token,
      configPath,
      name: flags.name,
      labels: flags.label,
      airgapped: flags.airgapped ?? false,
      maxJobs: flags.maxJobs,
      executors: flags.executor,
      force: flags.force ?? false,
      // The reason names the coordinator's origin and the failure, never the token.
      onRetry: ({ attempt, attempts, delayMs, reason }) =>
        process.stderr.write(
          `register: try ${attempt} of ${attempts} failed (${reason}); retrying in ${(delayMs / 1000).toFixed(1)} s with the same registration id\n`,
        ),
    });
    const { token: _secret, ...shown } = response;
    process.stdout.write(flags.json ? `${JSON.stringify(shown, null, 2)}\n` : `${response.runnerId}\n`);
    process.stderr.write(`registered runner ${response.name} (${response.runnerId}) in pool ${response.pool}; wrote ${configPath}\n`);
    if (warning) process.stderr.write(`warning: ${warning}\n`);
    return EXIT.OK;
  } catch (err) {
    if (err instanceof AlreadyRegisteredError || err instanceof DaemonRunningError || err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n`);
      return EXIT.USAGE;
    }
    if (err instanceof RbtkError) {
      process.stderr.write(`error: registration refused (${err.code}): ${err.message}\n`);
      return EXIT.ERROR;
    }
    process.stderr.write(`error: ${(err as Error).message}\n`);
    return EXIT.ERROR;
  }
}

function parseLabel(value: string, previous: Labels | undefined): Labels {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('write labels as key=value, e.g. --label gpu=a100');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}

function parseExecutor(value: string, previous: ExecutorName[] | undefined): ExecutorName[] {
  if (value !== 'docker' && value !== 'shell') throw new InvalidArgumentError('executors are docker or shell');
  const list = previous ?? [];
  return list.includes(value) ? list : [...list, value];
}
