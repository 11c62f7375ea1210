import type { Command } from 'commander';
import type { Runner } from '@rbtk/protocol';
import { printJson, withClient, type Io } from './context.js';
import { formatAgo, formatBytes, formatKeyValues, formatLabels, formatTable, formatTime } from './format.js';

export function formatRunner(r: Runner, now: number): string {
  const pairs: [string, string][] = [
    ['id', r.id],
    ['name', r.name],
    ['pool', r.pool],
    ['project', r.project],
    ['status', r.status],
    ['connected', r.connected ? 'yes' : 'no'],
    ['last heartbeat', r.lastHeartbeatAt === null ? 'never' : `${formatAgo(r.lastHeartbeatAt, now)} (${formatTime(r.lastHeartbeatAt)})`],
    ['registered', formatTime(r.registeredAt)],
    ['labels', formatLabels(r.labels)],
    ['airgapped', r.airgapped ? 'yes' : 'no'],
    ['agent version', r.agentVersion ?? '-'],
  ];
  if (r.drainReason) pairs.splice(5, 0, ['draining', r.drainReason]);
  if (r.host) {
    pairs.push(
      ['hostname', r.host.hostname],
      ['os', `${r.host.os} (${r.host.arch})`],
      ['cpus', String(r.host.cpus)],
      ['memory', formatBytes(r.host.memoryBytes)],
    );
  }
  if (r.gpus.length > 0) {
    pairs.push(['gpus', r.gpuUsable ? 'usable by jobs' : `present but unusable: ${r.gpuUnusableReason ?? 'unknown reason'}`]);
    for (const g of r.gpus) {
      const mig = g.mig.mode === 'enabled' ? `, MIG with ${g.mig.devices.length} device(s)` : '';
      pairs.push([`  gpu ${g.index}`, `${g.name}, ${g.memoryMiB} MiB, ${g.uuid}${mig}`]);
    }
  }
  return formatKeyValues(pairs);
}

/** `rbtk runner list|show|revoke`. */
export function registerRunnerCommands(program: Command, io: Io): void {
  const runner = program.command('runner').description('inspect, drain, resume and revoke runners');

  runner
    .command('list')
    .description('list runners')
    .option('--pool <name>', 'only the runners of this pool')
    .action((o: { pool?: string }, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const runners = await client.listRunners({ pool: o.pool });
        if (opts.json) return printJson(io, runners);
        if (runners.length === 0) return io.stderr(o.pool ? `no runners in pool ${o.pool}\n` : 'no runners\n');
        const now = io.now();
        const rows = runners.map((r) => [r.id, r.name, r.pool, r.status, formatAgo(r.lastHeartbeatAt, now), formatLabels(r.labels)]);
        io.stdout(formatTable(['ID', 'NAME', 'POOL', 'STATUS', 'LAST HEARTBEAT', 'LABELS'], rows));
      }),
    );

  runner
    .command('show')
    .description('show one runner')
    .argument('<id>', 'runner id')
    .action((id: string, _o: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const found = await client.getRunner(id);
        if (opts.json) printJson(io, found);
        else io.stdout(formatRunner(found, io.now()));
      }),
    );

  runner
    .command('drain')
    .description('stop giving the runner new jobs (kept across its reconnects); its running jobs finish')
    .argument('<id>', 'runner id')
    .action((id: string, _o: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const drained = await client.drainRunner(id);
        if (opts.json) return printJson(io, drained);
        const where = drained.connected ? 'its running jobs finish' : 'not connected: it drains when it reconnects';
        io.stdout(`runner ${drained.id} (${drained.name}) ${drained.status}: no new jobs; ${where}\n`);
      }),
    );

  runner
    .command('resume')
    .description('give the runner jobs again after rbtk runner drain')
    .argument('<id>', 'runner id')
    .action((id: string, _o: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const resumed = await client.resumeRunner(id);
        if (opts.json) return printJson(io, resumed);
        const still = resumed.status === 'DRAINING' ? `: still draining: ${resumed.drainReason ?? 'unknown reason'}` : '';
        io.stdout(`runner ${resumed.id} (${resumed.name}) ${resumed.status}${still}\n`);
      }),
    );

  runner
    .command('revoke')
    .description('revoke a runner: delete it and its tokens and disconnect it; the host must register again')
    .argument('<id>', 'runner id')
    .action((id: string, _o: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const revoked = await client.revokeRunner(id);
        if (opts.json) printJson(io, revoked);
        else io.stdout(`revoked runner ${revoked.id} (${revoked.name}, pool ${revoked.pool})\n`);
      }),
    );
}
