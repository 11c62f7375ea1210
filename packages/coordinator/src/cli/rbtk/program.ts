import { createRequire } from 'node:module';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { registerAuditCommand } from './audit.js';
import { addGlobalOptions, DEFAULT_TOKEN_FILE, type Io } from './context.js';
import { EXIT_CODES_HELP, ExitWith, exitCodeFor } from './exit-codes.js';
import { registerJobCommands } from './job.js';
import { registerPoolCommands } from './pool.js';
import { registerProjectCommands } from './project.js';
import { registerRunnerCommands } from './runner.js';
import { registerStatsCommand } from './stats.js';
import { registerTokenCommands } from './token.js';

const ENVIRONMENT_HELP = `
Environment:
  RBTK_URL          coordinator base URL (--url)
  RBTK_TOKEN        API token (--token)
  RBTK_TOKEN_FILE   file holding the API token, read when no token is given
  RBTK_PROJECT      project to act on (--project)
  Without a token, ./${DEFAULT_TOKEN_FILE} is used when it exists (the instance admin
  token of a coordinator started here with the default data directory).`;

function packageVersion(): string {
  // Read when the program is built, not on import; the path holds from both src/ and dist/.
  const pkg = createRequire(import.meta.url)('../../../package.json') as { version?: string };
  return pkg.version ?? '0.0.0';
}

/** The `rbtk` command tree, writing through `io`; commander errors are thrown, not exited. */
export function buildProgram(io: Io): Command {
  const program = new Command('rbtk')
    .description('operate an rbtk coordinator: projects, pools, registration tokens, runners, jobs, stats, audit log')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      outputError: (text, write) => write(text.replace(/^error: /, 'rbtk: ')),
    })
    .showHelpAfterError('(add --help for usage)');
  // Settings above are copied to each subcommand as it is created, so they come first.
  addGlobalOptions(program);
  registerProjectCommands(program, io);
  registerPoolCommands(program, io);
  registerRunnerCommands(program, io);
  registerAuditCommand(program, io);
  registerTokenCommands(program, io);
  registerJobCommands(program, io);
  registerStatsCommand(program, io);
  program.addHelpText('after', `${ENVIRONMENT_HELP}\n${EXIT_CODES_HELP}\n`);
  return program;
}

/** Runs one rbtk command line (without node and script) and returns its exit code. */
export async function runRbtk(args: readonly string[], io: Io): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...args], { from: 'user' });
    return 0;
  } catch (err) {
    const code = exitCodeFor(err);
    // Commander has already printed its own errors (and help) through configureOutput, and turns
    // an InvalidArgumentError from a flag's parser into a fresh CommanderError when it does: one
    // that reaches here was thrown by an action and is still unsaid. ExitWith carries a job's
    // exit status, which the command has already explained.
    const said = (err instanceof CommanderError && !(err instanceof InvalidArgumentError)) || err instanceof ExitWith;
    if (!said) io.stderr(`rbtk: ${err instanceof Error ? err.message : String(err)}\n`);
    return code;
  }
}
