import type { JobSpec, JobState, LogStream } from '@rbtk/protocol';

/*
 * Job storage records (times in epoch milliseconds). src/wire.ts maps them to
 * the protocol's Job and LogChunk.
 */

export interface JobRecord {
  /** FIFO position within the pool; a requeued job keeps it. */
  seq: number;
  id: string;
  project: string;
  poolId: number;
  poolName: string;
  state: JobState;
  spec: JobSpec;
  timeoutMs: number;
  retries: number;
  idempotencyKey: string | null;
  attempt: number;
  /** Attempts that ended in a retry-consuming failure. */
  failures: number;
  runnerId: string | null;
  exitCode: number | null;
  reason: string | null;
  /** Runners that rejected the job; it is not offered to them again. */
  excluded: string[];
  cancelRequested: boolean;
  /** Bytes of the current attempt's log. */
  logBytes: number;
  /** Number of state changes so far. */
  version: number;
  createdAt: number;
  assignedAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
}

export interface NewJob {
  id: string;
  project: string;
  poolId: number;
  poolName: string;
  spec: JobSpec;
  timeoutMs: number;
  createdAt: number;
}

/** The fields a transition may change; state changes also write a job_events row. */
export type JobChange = Partial<
  Pick<
    JobRecord,
    | 'state'
    | 'attempt'
    | 'failures'
    | 'runnerId'
    | 'exitCode'
    | 'reason'
    | 'excluded'
    | 'cancelRequested'
    | 'logBytes'
    | 'assignedAt'
    | 'startedAt'
    | 'finishedAt'
  >
>;

/**
 * Decides, inside the transaction, what to change given the job as stored
 * now; null leaves it untouched (the job moved on meanwhile).
 */
export type JobDecision = (job: JobRecord) => JobChange | null;

export interface JobTransition {
  before: JobRecord;
  after: JobRecord;
}

export interface JobEventRow {
  id: number;
  jobId: string;
  at: number;
  state: JobState;
  attempt: number;
  runnerId: string | null;
  reason: string | null;
  exitCode: number | null;
}

export interface LogChunkRow {
  jobId: string;
  attempt: number;
  offset: number;
  size: number;
  stream: LogStream;
  data: string;
}

export type AppendLogResult =
  /** Appended, or a duplicate below the stored length: `length` is the new stored length. */
  | { kind: 'stored'; length: number; appended: boolean }
  /** A gap: the runner must resend from `length`. */
  | { kind: 'gap'; length: number }
  /**
   * Past the attempt's log limit: acknowledged up to `length` (the chunk's end, in the runner's bytes) and
   * dropped. `appended`: what this call stored (the part below the limit and the marker), once; else empty.
   */
  | { kind: 'truncated'; length: number; appended: LogChunkRow[] }
  /** Not the job's current attempt (or no such job): acknowledged and dropped. */
  | { kind: 'stale' };
