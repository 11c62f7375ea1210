import { coerceError } from '@rbtk/protocol';
import type { Logger } from './log.js';
import { sleep, withJitter } from './sleep.js';

export interface RetryOptions {
  log: Logger;
  /** What is tried, for the log line of each failure ("requeue of a revoked runner's jobs"). */
  what: string;
  signal: AbortSignal;
  /** The wait before the first try; it doubles after each failure up to maxDelayMs. */
  firstDelayMs?: number;
  maxDelayMs?: number;
}

/** A write the store refused (a full disk) is tried again this much later at first, then less and less often. */
export const RETRY_FIRST_DELAY_MS = 1_000;
export const RETRY_MAX_DELAY_MS = 10_000;

/**
 * Tries `fn` again and again, after a wait that starts at firstDelayMs and
 * doubles to maxDelayMs (jittered, so several coordinators do not retry in
 * step), until it succeeds (true) or the signal aborts (false): for a write
 * that nothing else would ever make again once the store refused it. Each
 * failure is logged with the wait before the next try.
 */
export async function retryWithBackoff(fn: () => Promise<unknown>, opts: RetryOptions): Promise<boolean> {
  const max = opts.maxDelayMs ?? RETRY_MAX_DELAY_MS;
  for (let delay = opts.firstDelayMs ?? RETRY_FIRST_DELAY_MS; ; delay = Math.min(delay * 2, max)) {
    await sleep(withJitter(delay), opts.signal);
    if (opts.signal.aborted) return false;
    try {
      await fn();
      opts.log.info(`${opts.what}: done after retrying`);
      return true;
    } catch (err) {
      // Stopping closes the store under a try in flight: that is no failure to report.
      if (opts.signal.aborted) return false;
      opts.log.error({ err: coerceError(err), retryInMs: Math.min(delay * 2, max) }, `${opts.what} failed again: trying again`);
    }
  }
}
