import type { Command } from 'commander';
import { Option } from 'commander';
import { ErrorCode, PoolCreate, RbtkError, type Labels, type Pool, type PoolCreateInput } from '@rbtk/protocol';
import { checkBody } from '../../client/check-body.js';
import { printJson, withClient, type Io } from './context.js';
import { formatKeyValues, formatLabels, formatTable, formatTime } from './format.js';
import { parseName, parsePositiveDuration, parsePositiveInt, parseTag } from './parse.js';
import { addHostedOptions, formatHosted, type HostedFlags, hostedCreate, registerHostedPoolCommands } from './pool-hosted.js';

interface CreateOptions extends HostedFlags {
  type: 'self-hosted' | 'hosted';
  tag?: Labels;
  airgapped?: boolean;
  allowNonAirgappedJobs?: boolean;
  dockerNetwork?: string;
}

interface TokenOptions {
  ttl: string;
  uses?: number;
}

function poolRow(p: Pool): string[] {
  const r = p.runners;
  return [p.name, p.type, p.status, String(r.online), String(r.draining), String(r.offline), p.airgapped ? 'yes' : 'no', formatLabels(p.tags)];
}

export function formatPool(p: Pool): string {
  return formatKeyValues([
    ['name', p.name],
    ['project', p.project],
    ['type', p.type],
    ['status', p.status],
    ['airgapped', p.airgapped ? 'yes' : 'no'],
    ...(p.airgapped ? [['takes', p.allowNonAirgappedJobs ? 'any job' : 'only jobs that require airgapped'] as [string, string]] : []),
    ['container network', p.dockerNetwork ?? 'none'],
    ['tags', formatLabels(p.tags)],
    ['runners', `${p.runners.online} online, ${p.runners.draining} draining, ${p.runners.offline} offline`],
    ['created', formatTime(p.createdAt)],
    ['updated', formatTime(p.updatedAt)],
  ]);
}

/**
 * The body of `pool create`, checked against the API's schema here: a bad combination
 * (docker without --image, min above target) exits 2 before the token is even looked up.
 */
function poolCreateBody(name: string, o: CreateOptions): PoolCreateInput {
  const body: PoolCreateInput = {
    name,
    type: o.type,
    tags: o.tag ?? {},
    airgapped: o.airgapped ?? false,
    allowNonAirgappedJobs: o.allowNonAirgappedJobs ?? false,
    dockerNetwork: o.dockerNetwork ?? null,
    hosted: hostedCreate(o, o.type),
  };
  checkBody(PoolCreate, body, 'pool');
  return body;
}

/** `rbtk pool create|list|show|delete|token`. */
export function registerPoolCommands(program: Command, io: Io): void {
  const pool = program.command('pool').description('manage pools and mint registration tokens');

  addHostedOptions(pool
    .command('create')
    .description('create a pool (a hosted one with --type hosted --provider P --target N)')
    .argument('<name>', 'pool name, unique in its project', parseName)
    .addOption(new Option('--type <type>', 'pool type').choices(['self-hosted', 'hosted']).default('self-hosted'))
    .option('--tag <key=value>', 'pool tag, repeatable (e.g. --tag env=prod --tag gpu=a100)', parseTag)
    .option('--airgapped', 'only runners registered with --airgapped may join, and only jobs that require airgapped land')
    .option('--allow-non-airgapped-jobs', 'an air-gapped pool that also takes jobs without requires.airgapped')
    .option('--docker-network <name>', 'an internal Docker network job containers may join (default: none, no network)'))
    .action((name: string, o: CreateOptions, cmd: Command) => {
      const body = poolCreateBody(name, o);
      return withClient(cmd, io, async (client, opts) => {
        const created = await client.createPool(body);
        if (opts.json) printJson(io, created);
        else io.stdout(`created pool ${created.name} (${created.type}${created.airgapped ? ', air-gapped' : ''}) in project ${created.project}\n`);
      });
    });

  pool
    .command('list')
    .description('list pools with their runner counts')
    .action((_o: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const pools = await client.listPools();
        if (opts.json) return printJson(io, pools);
        if (pools.length === 0) return io.stderr('no pools\n');
        io.stdout(formatTable(['NAME', 'TYPE', 'STATUS', 'ONLINE', 'DRAINING', 'OFFLINE', 'AIRGAPPED', 'TAGS'], pools.map(poolRow)));
      }),
    );

  pool
    .command('show')
    .description('show one pool')
    .argument('<name>', 'pool name')
    .action((name: string, _o: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const found = await client.getPool(name);
        const hosted = found.hosted ? await client.getHostedPool(name) : undefined;
        if (opts.json) printJson(io, hosted ? { ...found, hostedStatus: hosted } : found);
        else io.stdout(formatPool(found) + (hosted ? formatHosted(hosted) : ''));
      }),
    );

  pool
    .command('delete')
    .description('delete a pool with its runners and its tokens (refused while runners are online or jobs in flight)')
    .argument('<name>', 'pool name')
    .action((name: string, _o: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        await client.deletePool(name);
        // The API answers 204: --json gets a small document so scripts still read one.
        if (opts.json) printJson(io, { name, deleted: true });
        else io.stdout(`deleted pool ${name}\n`);
      }),
    );

  const lifecycle = [
    ['drain', 'drain a pool: every runner DRAINING (no new jobs), running jobs finish, queued ones wait', 'drainPool',
      (p: Pool) => `pool ${p.name} draining: ${p.runners.draining} runner(s) DRAINING, no new jobs; running jobs finish\n`],
    ['pause', 'pause a pool: jobs queue but none starts; running jobs finish', 'pausePool',
      (p: Pool) => `pool ${p.name} paused: jobs queue but none starts until rbtk pool resume ${p.name}\n`],
    ['resume', 'make a paused or draining pool active again: its queued jobs start', 'resumePool',
      (p: Pool) => `pool ${p.name} active: ${p.runners.online} runner(s) ONLINE\n`],
  ] as const;
  for (const [verb, description, method, say] of lifecycle) {
    pool
      .command(verb)
      .description(description)
      .argument('<name>', 'pool name')
      .action((name: string, _o: unknown, cmd: Command) =>
        withClient(cmd, io, async (client, opts) => {
          const after = await client[method](name);
          if (opts.json) printJson(io, after);
          else io.stdout(say(after));
        }),
      );
  }

  registerHostedPoolCommands(pool, io);

  pool
    .command('token')
    .description('mint a registration token for a pool; prints the token alone (the RegistrationToken with --json)')
    .argument('<name>', 'pool name')
    .option('--ttl <duration>', 'how long the token stays valid (e.g. 30m, 1h, 7d)', parsePositiveDuration, '1h')
    .option('--uses <n>', 'how many registrations it admits (default: unlimited until it expires)', parsePositiveInt)
    .action((name: string, o: TokenOptions, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const minted = await client.mintRegistrationToken(name, { ttl: o.ttl, uses: o.uses });
        if (opts.json) return printJson(io, minted);
        if (!minted.token) throw new RbtkError(ErrorCode.Internal, 'the coordinator minted a token but did not return it');
        io.stdout(`${minted.token}\n`);
        // Facts for the person on stderr, so `$(rbtk pool token x)` captures the token alone.
        const uses = minted.usesLeft === null ? 'unlimited uses' : `${minted.usesLeft} use(s)`;
        io.stderr(`registration token ${minted.id} for pool ${minted.pool} (project ${minted.project}): ${uses}, expires ${formatTime(minted.expiresAt)}\n`);
      }),
    );
}
