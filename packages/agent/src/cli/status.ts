import type { Command } from 'commander';
import { resolveConfigPath } from '../config/paths.js';
import { ConfigError } from '../errors.js';
import type { DaemonStatus } from '../daemon-state.js';
import { readRunnerStatus, type RunnerStatusReport } from '../status.js';
import { EXIT } from './exit-codes.js';

export function addStatusCommand(program: Command): void {
  program
    .command('status')
    .description('show the registration and whether the daemon runs and is connected (exit 0 connected, 3 not)')
    .option('--config <path>', 'runner.yaml (default $RBTK_RUNNER_CONFIG or /etc/rbtk-runner/runner.yaml)')
    .option('--json', 'print the status as JSON')
    .action(async (flags: { config?: string; json?: boolean }) => {
      process.exitCode = await status(flags);
    });
}

async function status(flags: { config?: string; json?: boolean }): Promise<number> {
  let report: RunnerStatusReport;
  try {
    report = await readRunnerStatus(resolveConfigPath(flags.config));
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    return err instanceof ConfigError ? EXIT.CONFIG : EXIT.ERROR;
  }
  process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.connected ? EXIT.OK : EXIT.NOT_CONNECTED;
}

function formatReport(r: RunnerStatusReport): string {
  const labels = Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(', ') || '-';
  const lines: [string, string][] = [
    ['runner', `${r.name} (${r.runnerId})`],
    ['url', r.url],
    ['pool', `${r.pool ?? '-'}${r.project ? ` (project ${r.project})` : ''}`],
    ['labels', labels],
    ['config', r.configPath],
    ['daemon', describeDaemon(r)],
  ];
  const d = r.daemon;
  if (d?.connected) {
    lines.push(['status', d.status ?? '-'], ['heartbeat', `${d.lastHeartbeatAt ?? 'none yet'} (${d.heartbeatsSent} sent)`]);
  }
  if (d && d.draining.length > 0) lines.push(['draining', d.draining.map((x) => `${x.reason} (since ${x.since})`).join('; ')]);
  if (d?.upgradeRequired) lines.push(['upgrade', describeUpgrade(d.upgradeRequired)]);
  if (d?.exiting) lines.push(['exiting', d.exiting === 'upgrade' ? 'once idle, for an upgrade (exit 75)' : 'once idle (stopping)']);
  if (d) lines.push(['jobs', describeJobs(r)]);
  if (d?.gpus && d.gpus.gpus.length > 0) lines.push(['gpus', describeGpus(d.gpus, d.freeGpus)]);
  return lines.map(([k, v]) => `${`${k}:`.padEnd(11)}${v}\n`).join('');
}

function describeUpgrade(u: NonNullable<DaemonStatus['upgradeRequired']>): string {
  const installed = u.installed ?? 'unreadable';
  return `required: the coordinator takes rbtk-runner ${u.minimum} or later; running ${u.running}, installed ${installed}; no jobs until a newer one is installed (since ${u.since})`;
}

function describeJobs(r: RunnerStatusReport): string {
  const jobs = r.daemon?.jobs ?? [];
  const busy = jobs.filter((j) => j.state !== 'finished').length;
  const list = jobs.map((j) => `${j.jobId}#${j.attempt} ${j.state}`).join(', ');
  return `${busy} of ${r.maxJobs} slots in use${list ? `: ${list}` : ''}`;
}

function describeGpus(inv: NonNullable<DaemonStatus['gpus']>, free: string[]): string {
  const n = inv.gpus.length;
  if (!inv.usable) return `${n} present, not usable: ${inv.reason ?? 'unknown reason'}`;
  return `${free.length} of ${n} free (driver ${inv.driverVersion ?? '?'}, CUDA ${inv.cudaVersion ?? '?'})`;
}

function describeDaemon(r: RunnerStatusReport): string {
  const d = r.daemon;
  if (!d) return r.reason ?? 'not running';
  if (d.connected) return `running (pid ${d.pid}), connected since ${d.since}`;
  return `running (pid ${d.pid}), not connected since ${d.since}${d.lastError ? `: ${d.lastError}` : ''}`;
}
