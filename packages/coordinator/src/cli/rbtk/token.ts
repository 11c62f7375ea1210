import { InvalidArgumentError, Option, type Command } from 'commander';
import { ApiTokenRole, ErrorCode, RbtkError } from '@rbtk/protocol';
import { printJson, withClient, type Io } from './context.js';

function parseTokenName(value: string): string {
  if (value.length < 1 || value.length > 128) throw new InvalidArgumentError('use 1-128 characters');
  return value;
}

/** `rbtk token create`: API tokens for operators (admin) and job submitters (submitter). */
export function registerTokenCommands(program: Command, io: Io): void {
  const token = program.command('token').description('manage API tokens');

  token
    .command('create')
    .description('create an API token in the project; prints the token alone (the ApiToken with --json)')
    .addOption(new Option('--role <role>', 'what the token may do').choices(ApiTokenRole.options).makeOptionMandatory())
    .option('--name <name>', 'a note saying who or what holds the token', parseTokenName)
    .action((o: { role: ApiTokenRole; name?: string }, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const created = await client.createApiToken({ role: o.role, name: o.name });
        if (opts.json) return printJson(io, created);
        if (!created.token) throw new RbtkError(ErrorCode.Internal, 'the coordinator created a token but did not return it');
        io.stdout(`${created.token}\n`);
        // On stderr, so `$(rbtk token create ...)` captures the token alone.
        io.stderr(`${created.role} token ${created.id} for project ${created.project ?? '(all)'}: store it now, it is not shown again\n`);
      }),
    );
}
