import { Option, type Command } from 'commander';
import { JobState, PullPolicy, type LogChunk } from '@rbtk/protocol';
import type { ApiClient } from '../../client/api-client.js';
import { printJson, withClient, withSubmitterClient, type Io } from './context.js';
import { followJob } from './job-follow.js';
import { formatJob, JOB_TABLE_HEADERS, jobRow } from './job-format.js';
import { buildJobSpec, labelFlag, parseCount, parseEnv, parseMemoryFlag, type SubmitFlags } from './job-spec.js';
import { formatTable } from './format.js';
import { parseName, parsePositiveDuration, parsePositiveInt } from './parse.js';

const encoder = new TextEncoder();

/**
 * The current attempt's log over REST, page by page (the coordinator answers
 * part of a long log per call), up to its length when asked: a job that keeps
 * writing does not keep this reading (that is --follow). Every page names the
 * attempt, so a retry meanwhile cannot splice two attempts' logs.
 */
async function readLog(client: ApiClient, id: string, onChunk: (c: LogChunk) => void): Promise<void> {
  const { logBytes, attempt } = await client.getJob(id);
  let offset = 0;
  while (offset < logBytes) {
    const chunks = await client.getJobLogs(id, offset, attempt);
    let next = offset;
    for (const c of chunks) {
      const end = c.offset + encoder.encode(c.data).length;
      if (end <= next) continue; // already had these bytes
      onChunk(c);
      next = end;
    }
    if (next === offset) return;
    offset = next;
  }
}

/** `rbtk job submit|show|logs|cancel|list`. */
export function registerJobCommands(program: Command, io: Io): void {
  const job = program.command('job').description('submit, watch and cancel jobs');

  job
    .command('submit')
    .description('submit a job and print its id; with --image it runs in docker, otherwise as a process (shell executor)')
    .usage('(--pool NAME | --selector k=v...) [options] -- CMD [ARGS...]')
    .argument('[command...]', 'the program to run and its arguments, after --')
    .option('--pool <name>', 'the pool to run in', parseName)
    .option('--selector <key=value>', 'pick the one pool with these tags, repeatable', labelFlag('--selector', 'env=prod'))
    .option('--image <image>', 'run in a docker container of this image (the command is optional then)')
    .addOption(new Option('--pull <policy>', 'docker pull policy (default: if-not-present)').choices(PullPolicy.options))
    .option('--memory <size>', 'docker memory limit, e.g. 512m or 2g (at least 6m, no swap beyond it); past it the OOM killer ends the job', parseMemoryFlag)
    .option('--shell', 'run the command as a process on the runner (the default without --image)')
    .option('--require <key=value>', 'only on runners with this label, repeatable', labelFlag('--require', 'gpu=a100'))
    .option('--airgapped', 'only on an air-gapped pool and runner')
    .option('--gpus <n>', 'this many GPUs of the runner, for this job alone', parseCount)
    .option('--gpu-model <text>', 'only GPUs whose name contains this (any case), e.g. A100')
    .option('--gpu-memory <MiB>', 'only GPUs with at least this much memory each, in MiB', parseCount)
    .option('--env <NAME=value>', 'environment variable of the job, repeatable', parseEnv)
    .option('--workdir <dir>', 'working directory of the command')
    .option('--timeout <duration>', 'stop the job after this long (default: 1h)', parsePositiveDuration)
    .option('--retries <n>', 'run again this many times when it fails (default: 0)', parseCount)
    .option('--idempotency-key <key>', 'submitting the same key again returns the existing job; with a different spec it is refused')
    .option('--follow', "stream the log until the job ends and exit with the job's exit code")
    .action((command: string[], o: SubmitFlags, cmd: Command) => {
      const spec = buildJobSpec(o, command);
      if (o.follow) {
        return withSubmitterClient(cmd, io, async (client, opts) => {
          const { job: submitted, created } = await client.submit(spec);
          if (!opts.json) io.stderr(`${created ? 'submitted' : 'following existing'} job ${submitted.id} (pool ${submitted.pool})\n`);
          await followJob(client, submitted.id, io, opts.json ?? false);
        });
      }
      return withClient(cmd, io, async (client, opts) => {
        const { job: submitted, created } = await client.submitJob(spec);
        if (opts.json) return printJson(io, submitted);
        io.stdout(`${submitted.id}\n`);
        if (!created) io.stderr(`job ${submitted.id} already exists with idempotency key ${o.idempotencyKey ?? ''}: not submitted again\n`);
      });
    });

  job
    .command('show')
    .description('show one job')
    .argument('<id>', 'job id')
    .action((id: string, _o: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const found = await client.getJob(id);
        if (opts.json) printJson(io, found);
        else io.stdout(formatJob(found, io.now()));
      }),
    );

  job
    .command('logs')
    .description("print a job's log (its current attempt): stdout to stdout, stderr to stderr")
    .argument('<id>', 'job id')
    .option('--follow', "keep streaming until the job ends, then exit with the job's exit code")
    .action((id: string, o: { follow?: boolean }, cmd: Command) => {
      if (o.follow) return withSubmitterClient(cmd, io, (client, opts) => followJob(client, id, io, opts.json ?? false));
      return withClient(cmd, io, async (client, opts) => {
        if (opts.json) {
          const chunks: LogChunk[] = [];
          await readLog(client, id, (c) => chunks.push(c));
          return printJson(io, chunks);
        }
        await readLog(client, id, (c) => (c.stream === 'stderr' ? io.stderr : io.stdout)(c.data));
      });
    });

  job
    .command('cancel')
    .description('cancel a job: a queued one at once, a running one once its runner has stopped it')
    .argument('<id>', 'job id')
    .action((id: string, _o: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const cancelled = await client.cancelJob(id);
        if (opts.json) return printJson(io, cancelled);
        if (cancelled.state === 'cancelled') io.stdout(`cancelled job ${cancelled.id}\n`);
        else io.stdout(`cancelling job ${cancelled.id} (${cancelled.state}): its runner is stopping it\n`);
      }),
    );

  job
    .command('list')
    .description('list jobs, newest first')
    .option('--pool <name>', 'only the jobs of this pool', parseName)
    .addOption(new Option('--state <state>', 'only jobs in this state').choices(JobState.options))
    .option('--limit <n>', 'how many of the newest jobs (default: 100)', parsePositiveInt)
    .action((o: { pool?: string; state?: JobState; limit?: number }, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const jobs = await client.listJobs(o);
        if (opts.json) return printJson(io, jobs);
        if (jobs.length === 0) return io.stderr('no jobs\n');
        const now = io.now();
        io.stdout(formatTable(JOB_TABLE_HEADERS, jobs.map((j) => jobRow(j, now))));
      }),
    );
}
