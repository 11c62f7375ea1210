import { formatDuration, parseDuration, type RunnerConfig } from '@rbtk/protocol/runner';
import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { controlSocketPath, resolveConfigPath, resolveStateDir } from '../config/paths.js';
import { askDaemon, NOT_RUNNING, waitForIdle, type ControlActionAnswer } from '../control/client.js';
import type { DaemonStatus } from '../daemon-state.js';
import { ConfigError } from '../errors.js';
import type { JobStatus } from '../jobs/held-attempt.js';
import { EXIT } from './exit-codes.js';

interface DrainFlags {
  config?: string;
  wait?: boolean;
  timeout?: number;
  json?: boolean;
}

const CONFIG_HELP = 'runner.yaml (default $RBTK_RUNNER_CONFIG or /etc/rbtk-runner/runner.yaml)';

function durationArg(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** `rbtk-runner drain` and `rbtk-runner resume`, over the running daemon's control socket. */
export function addDrainCommands(program: Command): void {
  program
    .command('drain')
    .description('take no new jobs (the coordinator hears at once) and let the running ones finish; --wait: until they have')
    .option('--config <path>', CONFIG_HELP)
    .option('--wait', 'return once no job runs (exit 124 if some still run at the timeout, or the daemon stopped answering)')
    .option('--timeout <duration>', 'with --wait: how long to wait (default: shutdown_timeout from runner.yaml)', durationArg)
    .option('--json', 'print the outcome as JSON')
    .action(async (flags: DrainFlags) => {
      process.exitCode = await drain(flags);
    });

  program
    .command('resume')
    .description('take jobs again after rbtk-runner drain (a drain by the coordinator is lifted there: rbtk runner resume)')
    .option('--config <path>', CONFIG_HELP)
    .option('--json', 'print the outcome as JSON')
    .action(async (flags: { config?: string; json?: boolean }) => {
      process.exitCode = await resume(flags);
    });
}

async function controlSocket(flag: string | undefined): Promise<{ socket: string; config: RunnerConfig }> {
  const configPath = resolveConfigPath(flag);
  const config = await loadConfig(configPath);
  return { socket: controlSocketPath(resolveStateDir(config, configPath)), config };
}

/** Exit code for an answer without a status: no daemon (3) or a refusal (1); undefined when it has one. */
function failed(answer: ControlActionAnswer): number | undefined {
  if (!answer.running) {
    process.stderr.write(`error: rbtk-runner is ${answer.reason === NOT_RUNNING ? 'not running' : `unreachable: ${answer.reason}`}\n`);
    return EXIT.NOT_CONNECTED;
  }
  if ('refused' in answer) {
    process.stderr.write(`error: ${answer.refused}\n`);
    return EXIT.ERROR;
  }
  return undefined;
}

async function withConfig(flag: string | undefined, fn: (socket: string, config: RunnerConfig) => Promise<number>): Promise<number> {
  let found;
  try {
    found = await controlSocket(flag);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    return err instanceof ConfigError ? EXIT.CONFIG : EXIT.ERROR;
  }
  return fn(found.socket, found.config);
}

function drain(flags: DrainFlags): Promise<number> {
  return withConfig(flags.config, async (socket, config) => {
    const answer = await askDaemon(socket, 'drain');
    const code = failed(answer);
    if (code !== undefined || !('status' in answer)) return code ?? EXIT.ERROR;
    const status = answer.status;
    if (!flags.wait) {
      const running = busy(status.jobs);
      print(flags, { idle: running.length === 0, running, daemon: status }, describeDrain(status));
      return EXIT.OK;
    }
    const timeoutMs = flags.timeout ?? parseDuration(config.shutdown_timeout);
    if (!flags.json) process.stdout.write(describeDrain(status));
    const waited = await waitForIdle(socket, timeoutMs);
    if (waited.idle) {
      const text = waited.status ? 'idle: no job running\n' : 'idle: the daemon has stopped\n';
      print(flags, { idle: true, running: [], daemon: waited.status }, text);
      return EXIT.OK;
    }
    // Not knowing is not idle (a `drain --wait && reboot` must not reboot under running jobs): say what it last said.
    const last = waited.status ?? status;
    const running = waited.status ? waited.running : busy(status.jobs);
    const list = running.map(describeJob).join(', ');
    if (flags.json) print(flags, { idle: false, running, daemon: last, ...(waited.unreachable ? { unreachable: waited.unreachable } : {}) }, '');
    if (waited.unreachable) {
      const said = `when it last answered: ${list || 'no job running'}`;
      process.stderr.write(`error: cannot tell whether jobs still run: the daemon did not answer until the timeout (${formatDuration(timeoutMs)}): ${waited.unreachable}; ${said}\n`);
    } else {
      process.stderr.write(`error: still running after ${formatDuration(timeoutMs)}: ${list}\n`);
    }
    return EXIT.TIMEOUT;
  });
}

function resume(flags: { config?: string; json?: boolean }): Promise<number> {
  return withConfig(flags.config, async (socket) => {
    const answer = await askDaemon(socket, 'resume');
    const code = failed(answer);
    if (code !== undefined || !('status' in answer)) return code ?? EXIT.ERROR;
    const status = answer.status;
    const still = status.draining.map((d) => d.reason);
    const text =
      still.length === 0
        ? 'resumed: taking jobs\n'
        : `resumed on the host, but still draining: ${still.join('; ')}${status.draining.some((d) => d.source === 'coordinator') ? ' (lift it with rbtk runner resume)' : ''}\n`;
    print(flags, { draining: status.draining, daemon: status }, text);
    return EXIT.OK;
  });
}

function print(flags: { json?: boolean }, report: object, text: string): void {
  process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : text);
}

const busy = (jobs: JobStatus[]) => jobs.filter((j) => j.state !== 'finished');
const describeJob = (j: JobStatus) => `${j.jobId}#${j.attempt} (${j.state})`;

function describeDrain(s: DaemonStatus): string {
  const running = busy(s.jobs);
  const jobs = running.length === 0 ? 'no job running' : `${running.length} job(s) running: ${running.map(describeJob).join(', ')}`;
  const told = s.connected ? 'the coordinator has been told' : 'not connected: the coordinator hears when it reconnects';
  return `draining: no new jobs; ${jobs}; ${told}\n`;
}
