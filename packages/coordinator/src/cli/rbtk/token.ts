import { InvalidArgumentError, Option, type Command } from 'commander';
import { type ApiToken, ApiTokenRole, ErrorCode, RbtkError } from '@rbtk/protocol';
import { printJson, withClient, type Io } from './context.js';
import { formatAgo, formatSpan, formatTable, formatTime } from './format.js';
import { parsePositiveDuration } from './parse.js';

function parseTokenName(value: string): string {
  if (value.length < 1 || value.length > 128) throw new InvalidArgumentError('use 1-128 characters');
  return value;
}

/** `in 29d`, `expired 2h ago`, `never`: how much life a token has left, in one coarse unit. */
export function formatExpiry(expiresAt: string | null | undefined, now: number): string {
  if (expiresAt === null || expiresAt === undefined) return 'never';
  const t = Date.parse(expiresAt);
  if (Number.isNaN(t)) return expiresAt;
  return t <= now ? `expired ${formatSpan(now - t)} ago` : `in ${formatSpan(t - now)}`;
}

const scopeOf = (t: ApiToken): string => t.project ?? '(instance)';

/** `rbtk token create|list|revoke`: API tokens for operators (admin) and job submitters (submitter). */
export function registerTokenCommands(program: Command, io: Io): void {
  const token = program.command('token').description('create, list and revoke API tokens');

  token
    .command('create')
    .description('create an API token in the project; prints the token alone (the ApiToken with --json)')
    .addOption(new Option('--role <role>', 'what the token may do').choices(ApiTokenRole.options).makeOptionMandatory())
    .option('--name <name>', 'a note saying who or what holds the token', parseTokenName)
    .option('--ttl <duration>', 'how long the token stays valid (e.g. 12h, 30d, at most 3650d); default: until revoked', parsePositiveDuration)
    .option('--instance', 'an instance-wide admin token (no project), to replace the first-start admin token; instance admin only')
    .action((o: { role: ApiTokenRole; name?: string; ttl?: string; instance?: boolean }, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const created = await client.createApiToken({ role: o.role, name: o.name, ttl: o.ttl, instance: o.instance });
        if (opts.json) return printJson(io, created);
        if (!created.token) throw new RbtkError(ErrorCode.Internal, 'the coordinator created a token but did not return it');
        io.stdout(`${created.token}\n`);
        // On stderr, so `$(rbtk token create ...)` captures the token alone.
        const where = created.project === null ? 'for every project' : `for project ${created.project}`;
        const until = created.expiresAt ? `, expires ${formatTime(created.expiresAt)}` : '';
        io.stderr(`${created.role} token ${created.id} ${where}${until}: store it now, it is not shown again\n`);
      }),
    );

  token
    .command('list')
    .description("list the project's API tokens that are not revoked (never their secrets)")
    .action((_o: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const tokens = await client.listApiTokens();
        if (opts.json) return printJson(io, tokens);
        if (tokens.length === 0) return io.stderr('no API tokens\n');
        const now = io.now();
        const rows = tokens.map((t) => [
          t.id,
          t.role,
          scopeOf(t),
          t.name ?? '-',
          formatTime(t.createdAt),
          formatAgo(t.lastUsedAt ?? null, now),
          formatExpiry(t.expiresAt, now),
        ]);
        io.stdout(formatTable(['ID', 'ROLE', 'PROJECT', 'NAME', 'CREATED', 'LAST USED', 'EXPIRES'], rows));
      }),
    );

  token
    .command('revoke')
    .description('revoke an API token: its requests get 401 and its open job sockets are closed; refused for the last instance admin token')
    .argument('<id>', 'token id (the part after rbtk_api_, as `token list` shows it)')
    .action((id: string, _o: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const revoked = await client.revokeApiToken(id);
        if (opts.json) return printJson(io, revoked);
        const name = revoked.name ? ` (${revoked.name})` : '';
        io.stdout(`revoked ${revoked.role} token ${revoked.id}${name} of ${revoked.project === null ? 'the instance' : `project ${revoked.project}`}\n`);
      }),
    );
}
