import { z } from 'zod';
import { Id } from './schemas/common.js';
import { Job, JobSpec, LogStream } from './schemas/job.js';
import { parseFrame } from './frame.js';

/*
 * Job messages. Two sockets carry them:
 * - the runner socket (`/v1/runner/ws`): assignments pushed to runners, and
 *   their accept / started / log / result frames back (see messages.ts for the
 *   session frames they share the socket with);
 * - the submitter socket (`/v1/jobs/ws`): submit, watch, cancel.
 * Every job frame names the attempt it belongs to: a frame of an attempt that
 * is no longer the job's current one is refused (fencing).
 */

const JobAttempt = { jobId: Id, attempt: z.number().int().positive() };

// ---- coordinator → runner -------------------------------------------------------

/** Run this job. The runner answers accept (or reject) within acceptWithinMs. */
export const Assign = z.object({
  type: z.literal('assign'),
  ...JobAttempt,
  spec: JobSpec,
  timeoutMs: z.number().int().positive(),
  acceptWithinMs: z.number().int().positive(),
  /** The GPU uuids the coordinator chose for a `gpus: N` job; absent: the runner picks N free ones. */
  gpuIds: z.array(z.string().min(1)).max(64).optional(),
});
export type Assign = z.infer<typeof Assign>;

export const CancelReason = z.enum(['cancelled', 'stale', 'timed_out', 'shutdown']);
export type CancelReason = z.infer<typeof CancelReason>;

/** Stop this attempt: cancelled by a user, or no longer the job's current attempt. */
export const CancelAttempt = z.object({
  type: z.literal('cancel'),
  ...JobAttempt,
  reason: CancelReason,
});
export type CancelAttempt = z.infer<typeof CancelAttempt>;

/** Every log byte below `offset` is stored: the runner may drop it from its spool. */
export const LogAck = z.object({ type: z.literal('log_ack'), ...JobAttempt, offset: z.number().int().nonnegative() });
export type LogAck = z.infer<typeof LogAck>;

/** The result is stored (accepted) or refused as stale; either way the runner may forget it. */
export const ResultAck = z.object({
  type: z.literal('result_ack'),
  ...JobAttempt,
  accepted: z.boolean(),
  reason: z.string().optional(),
});
export type ResultAck = z.infer<typeof ResultAck>;

export const CoordinatorJobMessage = z.discriminatedUnion('type', [Assign, CancelAttempt, LogAck, ResultAck]);
export type CoordinatorJobMessage = z.infer<typeof CoordinatorJobMessage>;

// ---- runner → coordinator -------------------------------------------------------

export const Accept = z.object({ type: z.literal('accept'), ...JobAttempt });
export type Accept = z.infer<typeof Accept>;

/**
 * The runner does not run this attempt: it refuses the assignment, or it was
 * told to cancel an attempt it does not hold. `retryable`: the refusal passes
 * (no free slot yet, stopping, draining, its spool not writable), so the job is
 * requeued and this runner may be offered it again; without it, the runner
 * can never run the job (executor not offered, GPUs it lacks) and is not.
 */
export const Reject = z.object({
  type: z.literal('reject'),
  ...JobAttempt,
  reason: z.string().max(4096),
  retryable: z.boolean().optional(),
});
export type Reject = z.infer<typeof Reject>;

/** The container or process is running. */
export const Started = z.object({ type: z.literal('started'), ...JobAttempt });
export type Started = z.infer<typeof Started>;

/** One ordered chunk of output; offset = UTF-8 bytes of this attempt's log before it. */
export const LogFrame = z.object({
  type: z.literal('log'),
  ...JobAttempt,
  offset: z.number().int().nonnegative(),
  stream: LogStream,
  data: z.string(),
});
export type LogFrame = z.infer<typeof LogFrame>;

export const Outcome = z.enum(['succeeded', 'failed', 'cancelled', 'timed_out']);
export type Outcome = z.infer<typeof Outcome>;

export const ResultFrame = z.object({
  type: z.literal('result'),
  ...JobAttempt,
  outcome: Outcome,
  exitCode: z.number().int().nullable(),
  /** Why, for anything but success: "image X is not on this host", "timed out after 10m"... */
  message: z.string().max(8192).optional(),
  /** Total log bytes of the attempt, so the coordinator knows when it has them all. */
  logBytes: z.number().int().nonnegative(),
});
export type ResultFrame = z.infer<typeof ResultFrame>;

export const RunnerJobMessage = z.discriminatedUnion('type', [Accept, Reject, Started, LogFrame, ResultFrame]);
export type RunnerJobMessage = z.infer<typeof RunnerJobMessage>;

/** What a runner still holds when it says hello: running, or finished with an unacknowledged result. */
export const HeldAttempt = z.object({
  ...JobAttempt,
  finished: z.boolean(),
  /**
   * True while the runner writes the attempt's spool: it has taken the slot, and
   * accepts once the spool is on disk. The coordinator keeps waiting for that
   * accept, within the accept timeout, instead of counting the attempt accepted.
   */
  accepting: z.boolean().optional(),
  /** The GPU uuids a running attempt holds, so a restarted coordinator hands them to no one else. */
  gpus: z.array(z.string().min(1)).max(64).optional(),
});
export type HeldAttempt = z.infer<typeof HeldAttempt>;

// ---- submitter socket (/v1/jobs/ws) ------------------------------------------------

const ReqId = z.string().min(1).max(64);

export const SubmitRequest = z.object({ type: z.literal('submit'), reqId: ReqId, spec: JobSpec });
export const WatchRequest = z.object({
  type: z.literal('watch'),
  reqId: ReqId,
  jobId: Id,
  /** Resume the log from this byte offset (default 0: the whole log). */
  fromOffset: z.number().int().nonnegative().default(0),
  /**
   * The attempt whose log `fromOffset` counts in. When the job has moved on to
   * another attempt since (a retry while the watcher was away), the watch reads
   * the current attempt's log from its first byte instead.
   */
  attempt: z.number().int().positive().optional(),
});
export const UnwatchRequest = z.object({ type: z.literal('unwatch'), reqId: ReqId, jobId: Id });
export const CancelRequest = z.object({ type: z.literal('cancel'), reqId: ReqId, jobId: Id });

export const SubmitterRequest = z.discriminatedUnion('type', [SubmitRequest, WatchRequest, UnwatchRequest, CancelRequest]);
export type SubmitterRequest = z.infer<typeof SubmitterRequest>;
export type SubmitterRequestInput = z.input<typeof SubmitterRequest>;

/** Answer to submit: the job, new or (same idempotency key) the existing one. */
export const Submitted = z.object({ type: z.literal('submitted'), reqId: ReqId, job: Job, created: z.boolean() });
/** Answer to watch, unwatch and cancel. */
export const RequestAck = z.object({ type: z.literal('ack'), reqId: ReqId });
/** A watched job changed state (sent first with the current state when a watch starts). */
export const JobEvent = z.object({ type: z.literal('job'), job: Job });
/** A watched job's log, in order, each byte once. */
export const JobLog = z.object({
  type: z.literal('log'),
  jobId: Id,
  offset: z.number().int().nonnegative(),
  stream: LogStream,
  data: z.string(),
});
export const SubmitterError = z.object({
  type: z.literal('error'),
  reqId: ReqId.optional(),
  code: z.string(),
  message: z.string(),
});

export const SubmitterEvent = z.discriminatedUnion('type', [Submitted, RequestAck, JobEvent, JobLog, SubmitterError]);
export type SubmitterEvent = z.infer<typeof SubmitterEvent>;
export type JobEvent = z.infer<typeof JobEvent>;
export type JobLog = z.infer<typeof JobLog>;

export const SUBMITTER_REQUEST_TYPES = ['submit', 'watch', 'unwatch', 'cancel'] as const;
export const SUBMITTER_EVENT_TYPES = ['submitted', 'ack', 'job', 'log', 'error'] as const;
export const RUNNER_JOB_MESSAGE_TYPES = ['accept', 'reject', 'started', 'log', 'result'] as const;
export const COORDINATOR_JOB_MESSAGE_TYPES = ['assign', 'cancel', 'log_ack', 'result_ack'] as const;

export const parseSubmitterRequest = (data: string) => parseFrame(SubmitterRequest, SUBMITTER_REQUEST_TYPES, data);
export const parseSubmitterEvent = (data: string) => parseFrame(SubmitterEvent, SUBMITTER_EVENT_TYPES, data);
