import { isTerminalJobState, ErrorCode, RbtkError, type Job, type SubmitterClient } from '@rbtk/protocol';
import type { Io } from './context.js';
import { ExitWith, JobExitCode } from './exit-codes.js';

/** The exit status `--follow` ends with: the job's own for a failure with one, else 1, 124, 130. */
export function jobExitCode(job: Job): number {
  switch (job.state) {
    case 'succeeded':
      return 0;
    case 'timed_out':
      return JobExitCode.TimedOut;
    case 'cancelled':
      return JobExitCode.Cancelled;
    default:
      // A process status is 1-255; anything else (none, 0, a signal's -1) says "failed" as 1.
      return job.exitCode !== null && job.exitCode >= 1 && job.exitCode <= 255 ? job.exitCode : JobExitCode.Failed;
  }
}

function describeEnd(job: Job): string {
  const why = job.reason ? `: ${job.reason}` : '';
  const code = job.exitCode === null ? '' : ` (exit code ${job.exitCode})`;
  return `rbtk: job ${job.id} ${job.state.replace('_', ' ')}${why}${code}\n`;
}

/**
 * Streams a job's log until it ends (stdout to stdout, stderr to stderr; with --json one
 * watch event per line) and ends with the job's exit status (ExitWith) unless it succeeded.
 */
export async function followJob(client: SubmitterClient, jobId: string, io: Io, json: boolean): Promise<void> {
  let last: Job | undefined;
  for await (const event of client.watch(jobId)) {
    if (json) io.stdout(`${JSON.stringify(event)}\n`);
    if (event.type === 'job') last = event.job;
    else if (!json) (event.stream === 'stderr' ? io.stderr : io.stdout)(event.data);
  }
  if (!last || !isTerminalJobState(last.state)) {
    throw new RbtkError(ErrorCode.Unavailable, `the watch of job ${jobId} ended before the job did`, 0);
  }
  const code = jobExitCode(last);
  if (code === 0) return;
  if (!json) io.stderr(describeEnd(last));
  throw new ExitWith(code);
}
