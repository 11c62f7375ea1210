#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { agentVersion } from '../version.js';
import { addDoctorCommand } from './doctor.js';
import { addDrainCommands } from './drain.js';
import { EXIT } from './exit-codes.js';
import { addRegisterCommand } from './register.js';
import { addRunCommand } from './run.js';
import { addStatusCommand } from './status.js';

const program = new Command('rbtk-runner')
  .description('rbtk runner agent: registers this host with a coordinator and runs its jobs')
  .version(agentVersion(), '-V, --version')
  .showHelpAfterError('(add --help for usage)')
  // Commander's own errors (unknown flag, missing value) are usage errors: exit 2, not 1.
  .exitOverride((err) => {
    throw err;
  });
addRegisterCommand(program);
addRunCommand(program);
addStatusCommand(program);
addDrainCommands(program);
addDoctorCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
  process.stderr.write(`error: ${(err as Error).message}\n`);
  process.exit(EXIT.ERROR);
}
