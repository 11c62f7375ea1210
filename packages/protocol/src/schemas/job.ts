import { z } from 'zod';
import { Id, Labels, MemoryLimit, Name, PositiveDuration, Timestamp } from './common.js';

export const JobState = z.enum(['queued', 'assigned', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out']);
export type JobState = z.infer<typeof JobState>;
export const TERMINAL_JOB_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled', 'timed_out'];
export const isTerminalJobState = (s: JobState) => TERMINAL_JOB_STATES.includes(s);

export const PullPolicy = z.enum(['if-not-present', 'always', 'never']);
export type PullPolicy = z.infer<typeof PullPolicy>;

const Env = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment variable names are letters, digits and _'), z.string());
const Command = z.array(z.string()).min(1, 'a command needs at least the program to run');

export const DockerExecutorSpec = z
  .object({
    type: z.literal('docker'),
    image: z.string().min(1).max(512),
    command: Command.optional(),
    env: Env.default({}),
    workdir: z.string().optional(),
    pull: PullPolicy.default('if-not-present'),
    /**
     * The container's memory limit (HostConfig.Memory, with no swap beyond it): `512m`, `2g` or bytes.
     * Past it the kernel's OOM killer stops the job, and the result says so. Absent: no limit.
     */
    memory: MemoryLimit.optional(),
  })
  .strict();
export type DockerExecutorSpec = z.infer<typeof DockerExecutorSpec>;

export const ShellExecutorSpec = z
  .object({
    type: z.literal('shell'),
    command: Command,
    env: Env.default({}),
    workdir: z.string().optional(),
  })
  .strict();
export type ShellExecutorSpec = z.infer<typeof ShellExecutorSpec>;

export const ExecutorSpec = z.discriminatedUnion('type', [DockerExecutorSpec, ShellExecutorSpec]);
export type ExecutorSpec = z.infer<typeof ExecutorSpec>;

export const JobRequirements = z
  .object({
    /** Every label here must be on the runner with the same value. */
    labels: Labels.default({}),
    airgapped: z.boolean().optional(),
    gpus: z.number().int().nonnegative().max(64).optional(),
    /** A substring of the GPU name, e.g. "A100". */
    gpuModel: z.string().min(1).max(128).optional(),
    /** Minimum memory of each GPU, in MiB. */
    gpuMemoryMiB: z.number().int().positive().optional(),
  })
  .strict();
export type JobRequirements = z.infer<typeof JobRequirements>;

/** What a submitter sends: where the job may run and what it runs. */
export const JobSpec = z
  .object({
    name: z.string().max(255).optional(),
    pool: Name.optional(),
    /** Pool tags that must all match; exactly one pool may match. */
    selector: Labels.optional(),
    requires: JobRequirements.default({ labels: {} }),
    executor: ExecutorSpec,
    timeout: PositiveDuration.default('1h'),
    retries: z.number().int().nonnegative().max(100).default(0),
    idempotencyKey: z.string().min(1).max(255).optional(),
  })
  .strict()
  .refine((s) => (s.pool === undefined) !== (s.selector === undefined), {
    message: 'name exactly one of "pool" or "selector"',
  });
export type JobSpec = z.infer<typeof JobSpec>;
export type JobSpecInput = z.input<typeof JobSpec>;

export const Job = z.object({
  id: Id,
  project: Name,
  pool: Name,
  state: JobState,
  spec: JobSpec,
  /** Attempt number of the current or last assignment; 0 before the first. */
  attempt: z.number().int().nonnegative(),
  runnerId: Id.nullable(),
  exitCode: z.number().int().nullable(),
  /** Why the job is where it is: "runner_lost", "timeout", an executor error... */
  reason: z.string().nullable(),
  logBytes: z.number().int().nonnegative(),
  createdAt: Timestamp,
  startedAt: Timestamp.nullable(),
  finishedAt: Timestamp.nullable(),
});
export type Job = z.infer<typeof Job>;

export const LogStream = z.enum(['stdout', 'stderr']);
export type LogStream = z.infer<typeof LogStream>;

/** One ordered piece of a job's log; offset counts bytes of the job's whole log. */
export const LogChunk = z.object({
  jobId: Id,
  offset: z.number().int().nonnegative(),
  stream: LogStream,
  data: z.string(),
});
export type LogChunk = z.infer<typeof LogChunk>;
