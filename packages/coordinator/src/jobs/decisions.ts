import type { JobState, ResultFrame } from '@rbtk/protocol';
import type { JobDecision } from '../store/job-rows.js';

/*
 * What each event does to a job, as pure decisions the store applies inside
 * its transaction. Each checks the job as stored *then*: an event for an
 * attempt that is no longer current, or a job that moved on, changes nothing.
 */

export const isInFlight = (s: JobState): boolean => s === 'assigned' || s === 'running';

/** Requeue reasons that do not use up a retry: the job never ran. */
export type FreeRequeueReason = 'accept_timeout' | 'rejected' | 'refused_for_now' | 'runner_draining';

export function assignTo(runnerId: string, now: number): JobDecision {
  return (j) =>
    j.state !== 'queued' || j.excluded.includes(runnerId)
      ? null
      : {
          state: 'assigned',
          attempt: j.attempt + 1,
          runnerId,
          assignedAt: now,
          startedAt: null,
          finishedAt: null,
          exitCode: null,
          reason: null,
          logBytes: 0,
        };
}

const current = (runnerId: string, attempt: number): ((j: Parameters<JobDecision>[0]) => boolean) => (j) =>
  j.attempt === attempt && j.runnerId === runnerId && isInFlight(j.state);

export function started(runnerId: string, attempt: number, now: number): JobDecision {
  return (j) => (current(runnerId, attempt)(j) && j.state === 'assigned' ? { state: 'running', startedAt: now } : null);
}

/**
 * The attempt ended without running to completion on its runner (runner lost
 * or revoked, executor failure): back to the queue while retries remain,
 * else failed. A job whose cancel was asked for is cancelled instead.
 */
function retryOrFail(j: Parameters<JobDecision>[0], reason: string, now: number, exitCode: number | null) {
  if (j.cancelRequested) return { state: 'cancelled' as const, reason: 'cancelled', exitCode, finishedAt: now };
  const failures = j.failures + 1;
  if (failures <= j.retries) return { state: 'queued' as const, failures, reason, exitCode, runnerId: null };
  return { state: 'failed' as const, failures, reason, exitCode, finishedAt: now };
}

/**
 * Attempts whose loss before they started is free: a later one's loss counts
 * as a failure. Without a bound, a job that brings down every runner that
 * takes it (before it starts: its image pull, say) would go round for ever.
 */
export const FREE_LOSS_ATTEMPTS = 3;

/**
 * The attempt is lost before it started on its runner (assigned: its assign
 * or accept may have been lost, or it was pulling its image): back to the
 * queue at no cost, as it never ran, up to FREE_LOSS_ATTEMPTS; then like a
 * started one.
 */
function lostBeforeStart(j: Parameters<JobDecision>[0], reason: string, now: number) {
  if (j.cancelRequested) return { state: 'cancelled' as const, reason: 'cancelled', finishedAt: now };
  if (j.attempt > FREE_LOSS_ATTEMPTS) return retryOrFail(j, reason, now, null);
  return { state: 'queued' as const, reason, runnerId: null };
}

/**
 * The runner lost this attempt: it went OFFLINE, was revoked, or said hello
 * without holding it. Not started there: lostBeforeStart. Started: it may
 * have run, and it costs a retry.
 */
export function runnerGone(runnerId: string, attempt: number, reason: 'runner_lost' | 'runner_revoked', now: number): JobDecision {
  return (j) => {
    if (!current(runnerId, attempt)(j)) return null;
    return j.state === 'assigned' ? lostBeforeStart(j, reason, now) : retryOrFail(j, reason, now, null);
  };
}

/** Requeue that costs no retry: the runner refused the job or never said it took it. */
export function requeueFree(runnerId: string, attempt: number, why: FreeRequeueReason, now: number, detail?: string): JobDecision {
  return (j) => {
    if (!current(runnerId, attempt)(j) || j.state !== 'assigned') return null;
    // Its cancel was asked for while it was on the way: it never ran, and it is not run now.
    if (j.cancelRequested) return { state: 'cancelled', reason: 'cancelled', finishedAt: now };
    if (why === 'accept_timeout') return { state: 'queued', reason: 'accept_timeout', runnerId: null };
    // It drains, or refused for now: another runner may take the job, and so may this one later.
    if (why === 'runner_draining') return { state: 'queued', reason: `rejected: ${detail ?? 'draining'}`, runnerId: null };
    if (why === 'refused_for_now') return { state: 'queued', reason: `rejected for now: ${detail ?? 'no reason given'}`, runnerId: null };
    // Never offered to this runner again.
    return { state: 'queued', reason: `rejected: ${detail ?? 'no reason given'}`, runnerId: null, excluded: [...j.excluded, runnerId] };
  };
}

/** The runner's result for the attempt. */
export function finish(runnerId: string, attempt: number, r: ResultFrame, now: number): JobDecision {
  return (j) => {
    if (!current(runnerId, attempt)(j)) return null;
    switch (r.outcome) {
      case 'succeeded':
        return { state: 'succeeded', exitCode: r.exitCode, reason: null, finishedAt: now };
      case 'failed':
        return retryOrFail(j, r.message ?? (r.exitCode === null ? 'failed' : `exited with code ${r.exitCode}`), now, r.exitCode);
      case 'cancelled':
        return { state: 'cancelled', exitCode: r.exitCode, reason: r.message ?? 'cancelled', finishedAt: now };
      case 'timed_out':
        return { state: 'timed_out', exitCode: r.exitCode, reason: r.message ?? 'timed out', finishedAt: now };
    }
  };
}

/** A user's cancel: queued jobs stop at once, in-flight ones when their runner reports back. */
export function requestCancel(now: number, atOnce: boolean): JobDecision {
  return (j) => {
    if (j.state === 'queued' || (atOnce && isInFlight(j.state))) {
      return { state: 'cancelled', reason: 'cancelled', cancelRequested: true, finishedAt: now };
    }
    if (isInFlight(j.state) && !j.cancelRequested) return { cancelRequested: true };
    return null;
  };
}

/** The coordinator's backstop: still running well past its timeout. */
export function timedOut(attempt: number, graceMs: number, now: number): JobDecision {
  return (j) =>
    (j.state === 'running' || j.state === 'assigned') && j.attempt === attempt
      ? { state: 'timed_out', reason: `no result ${graceMs / 1000}s after the job's ${j.spec.timeout} timeout`, finishedAt: now }
      : null;
}
