import type { Job } from '@rbtk/protocol';
import { formatAgo, formatKeyValues, formatLabels, formatTime } from './format.js';

/** argv as one line, quoting the arguments a shell would split. */
export function formatCommand(args: readonly string[]): string {
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** What the job runs, in one line: its name, else the image and/or command. */
export function jobTitle(job: Job, max = 60): string {
  const e = job.spec.executor;
  const command = formatCommand(e.command ?? []);
  const what = job.spec.name ?? (e.type === 'docker' ? `${e.image}${command ? ` ${command}` : ''}` : command);
  return what.length > max ? `${what.slice(0, max - 1)}…` : what;
}

/** `ID STATE POOL ATTEMPT EXIT AGE NAME/COMMAND` */
export const JOB_TABLE_HEADERS = ['ID', 'STATE', 'POOL', 'ATTEMPT', 'EXIT', 'AGE', 'NAME/COMMAND'] as const;

export function jobRow(job: Job, now: number): string[] {
  return [
    job.id,
    job.state,
    job.pool,
    String(job.attempt),
    job.exitCode === null ? '-' : String(job.exitCode),
    formatAgo(job.createdAt, now).replace(/ ago$/, ''),
    jobTitle(job),
  ];
}

export function formatJob(job: Job, now: number): string {
  const e = job.spec.executor;
  const pairs: [string, string][] = [
    ['id', job.id],
    ['name', job.spec.name ?? '-'],
    ['project', job.project],
    ['pool', job.pool],
    ['state', job.state],
    ['reason', job.reason ?? '-'],
    ['exit code', job.exitCode === null ? '-' : String(job.exitCode)],
    ['attempt', `${job.attempt} (retries allowed: ${job.spec.retries})`],
    ['runner', job.runnerId ?? '-'],
    ['executor', e.type === 'docker' ? `docker ${e.image} (pull ${e.pull})` : 'shell'],
    ['command', e.command ? formatCommand(e.command) : '-'],
  ];
  if (job.spec.selector) pairs.push(['selector', formatLabels(job.spec.selector)]);
  pairs.push(['requires', formatRequires(job)]);
  if (Object.keys(e.env).length > 0) pairs.push(['env', Object.keys(e.env).join(',')]);
  if (e.workdir) pairs.push(['workdir', e.workdir]);
  pairs.push(
    ['timeout', job.spec.timeout],
    ['log bytes', String(job.logBytes)],
    ['created', `${formatTime(job.createdAt)} (${formatAgo(job.createdAt, now)})`],
    ['started', formatTime(job.startedAt)],
    ['finished', formatTime(job.finishedAt)],
  );
  return formatKeyValues(pairs);
}

function formatRequires(job: Job): string {
  const r = job.spec.requires;
  const parts = [];
  if (Object.keys(r.labels).length > 0) parts.push(formatLabels(r.labels));
  if (r.gpus !== undefined) parts.push(`gpus=${r.gpus}`);
  if (r.airgapped) parts.push('airgapped');
  return parts.length === 0 ? '-' : parts.join(' ');
}
