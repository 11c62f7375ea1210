import type { Command } from 'commander';
import { formatDuration, JobState, type Percentiles, type PoolStats } from '@rbtk/protocol';
import { printJson, withClient, type Io } from './context.js';
import { formatKeyValues, formatTable } from './format.js';
import { parseName } from './parse.js';

interface StatsOptions {
  pool?: string;
}

/** Milliseconds people read: `850ms`, `1.2s`, `3m4.5s`; `-` without a sample. */
function formatMs(ms: number | null): string {
  if (ms === null) return '-';
  return ms < 1000 ? `${Math.round(ms)}ms` : formatDuration(Math.round(ms / 100) * 100);
}

const pair = (p: Percentiles) => `${formatMs(p.p50)} / ${formatMs(p.p95)}`;

/** `queued 1, assigned 0, …`: every state, in lifecycle order. */
const jobCounts = (s: PoolStats) => JobState.options.map((state) => `${state} ${s.jobs[state]}`).join(', ');

const rate = (r: PoolStats['finished']['last5m']) => `${r.count} in the last ${r.minutes}m (${r.perMinute}/min)`;

export function formatPoolStats(s: PoolStats): string {
  const l = s.latency;
  return formatKeyValues([
    ['pool', `${s.pool} (project ${s.project})`],
    ['jobs', jobCounts(s)],
    ['finished', `${rate(s.finished.last5m)}, ${rate(s.finished.last60m)}`],
    ['queue wait p50/p95', pair(l.queueWaitMs)],
    ['run time p50/p95', pair(l.runTimeMs)],
    ['sample', `${l.jobs} job(s) finished in the last ${l.windowMinutes}m after starting`],
    ['runners', `${s.runners.online} online, ${s.runners.draining} draining, ${s.runners.offline} offline`],
  ]);
}

const HEADERS = [
  'POOL',
  ...JobState.options.map((s) => s.toUpperCase()),
  'DONE/MIN 5M',
  'DONE/MIN 60M',
  'WAIT P50/P95',
  'RUN P50/P95',
  'RUNNERS ON/DRAIN/OFF',
];

function statsRow(s: PoolStats): string[] {
  const r = s.runners;
  return [
    s.pool,
    ...JobState.options.map((state) => String(s.jobs[state])),
    String(s.finished.last5m.perMinute),
    String(s.finished.last60m.perMinute),
    pair(s.latency.queueWaitMs),
    pair(s.latency.runTimeMs),
    `${r.online}/${r.draining}/${r.offline}`,
  ];
}

/**
 * `rbtk stats [--pool NAME]`: one pool as key: value lines, or every pool of
 * the project as a table. --json prints the PoolStats (an array of them without --pool).
 */
export function registerStatsCommand(program: Command, io: Io): void {
  program
    .command('stats')
    .description('jobs by state, throughput, queue wait and run time percentiles, runners by status, per pool')
    .option('--pool <name>', 'one pool (default: every pool of the project)', parseName)
    .action((o: StatsOptions, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        if (o.pool !== undefined) {
          const stats = await client.getPoolStats(o.pool);
          if (opts.json) printJson(io, stats);
          else io.stdout(formatPoolStats(stats));
          return;
        }
        const all = await client.listPoolStats();
        if (opts.json) return printJson(io, all);
        if (all.length === 0) return io.stderr('no pools\n');
        io.stdout(formatTable(HEADERS, all.map(statsRow)));
        const window = all[0]!.latency.windowMinutes;
        io.stderr(`wait: created → started, run: started → finished, of the jobs finished in the last ${window}m\n`);
      }),
    );
}
