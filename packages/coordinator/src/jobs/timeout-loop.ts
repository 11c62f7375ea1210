import { coerceError } from '@rbtk/protocol';
import type { Logger } from '../log.js';
import { sleep, withJitter } from '../sleep.js';
import type { JobService } from './job-service.js';

/** How often the backstop looks; its grace is 30 s, so a second is plenty. */
export const TIMEOUT_CHECK_INTERVAL_MS = 1000;

/**
 * The job timeout backstop. The agent enforces timeouts itself; this catches
 * a runner that never reports back: a job still running 30 s past its timeout
 * becomes timed_out and its runner is told to cancel it.
 */
export async function runJobTimeoutLoop(
  deps: { jobs: JobService; log: Logger; intervalMs?: number },
  signal: AbortSignal,
): Promise<void> {
  const interval = deps.intervalMs ?? TIMEOUT_CHECK_INTERVAL_MS;
  while (!signal.aborted) {
    await sleep(withJitter(interval), signal);
    if (signal.aborted) return;
    try {
      for (const t of await deps.jobs.expireOverdue()) {
        deps.log.warn({ jobId: t.after.id, runnerId: t.before.runnerId, attempt: t.after.attempt }, 'job timed out (no result from its runner)');
      }
    } catch (err) {
      deps.log.error({ err: coerceError(err) }, 'job timeout check failed');
    }
  }
}
