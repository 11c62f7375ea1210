import type { JobState } from '@rbtk/protocol';
import type {
  AppendLogResult,
  JobDecision,
  JobEventRow,
  JobRecord,
  JobTransition,
  LogChunkRow,
  NewJob,
} from './job-rows.js';

export interface JobListFilter {
  project: string;
  poolId?: number;
  state?: JobState;
  limit: number;
}

export interface SubmitResult {
  /** The job as submitted (queued), even when `assigned` moved it on in the same commit. */
  job: JobRecord;
  /** false: a job with this idempotency key existed and is returned instead. */
  created: boolean;
  /** The assignment made in the same transaction, when submit was given one and it applied. */
  assigned?: JobTransition;
}

/*
 * Jobs. Every state change is one transaction that also writes its job_events
 * row; transitions decide inside the transaction (on the job as stored then),
 * so a change that raced with another (a cancel, a requeue) is simply skipped.
 */
export interface JobStore {
  /**
   * Inserts a queued job, or returns the one with the same (project, idempotency key).
   * `assign` (a free slot was at hand) is applied to the new job in the same
   * transaction, so submit and assignment cost one commit.
   */
  submit(job: NewJob, assign?: JobDecision): Promise<SubmitResult>;
  get(id: string): Promise<JobRecord | null>;
  /** The project's job with this idempotency key, if one was submitted. */
  getByIdempotencyKey(project: string, key: string): Promise<JobRecord | null>;
  /** Newest first. */
  list(filter: JobListFilter): Promise<JobRecord[]>;
  /** The pool's queued jobs in FIFO order, after `afterSeq`. */
  listQueued(poolId: number, afterSeq: number, limit: number): Promise<JobRecord[]>;
  /** Ids of pools that have queued jobs (dispatch after a restart). */
  poolsWithQueued(): Promise<number[]>;
  /** Jobs assigned to or running on a runner. */
  inFlight(runnerId: string): Promise<JobRecord[]>;
  /** Assigned or running jobs whose runner is gone or OFFLINE (after a restart). */
  orphaned(): Promise<JobRecord[]>;
  /** Jobs whose timeout plus grace passed at `now`: running ones from their start, accepted ones never started from their assignment. */
  overdue(now: number, graceMs: number): Promise<JobRecord[]>;
  /** Applies each decision to its job, all in one transaction; returns the jobs that changed. */
  transition(items: { jobId: string; decide: JobDecision }[], now: number): Promise<JobTransition[]>;
  events(jobId: string): Promise<JobEventRow[]>;
  /**
   * Appends a log chunk of `attempt` when it starts exactly at the stored length.
   * Given `runnerId`, only the runner that holds the attempt may append (stale otherwise).
   * At most `maxBytes` of the attempt's log are stored, then a truncation marker (log-limit.ts).
   */
  appendLog(chunk: Omit<LogChunkRow, 'size'>, runnerId?: string, maxBytes?: number): Promise<AppendLogResult>;
  /** The attempt's log from byte `fromOffset` (a chunk straddling it included), at most `limit` chunks. */
  logs(jobId: string, attempt: number, fromOffset: number, limit?: number): Promise<LogChunkRow[]>;
}
