import { RbtkError, type RegisterRequestInput, type RegisterResponse } from '@rbtk/protocol/runner';
import { Backoff, type BackoffOptions } from '../backoff.js';
import { ConnectionError } from '../errors.js';
import { sleep } from '../sleep.js';
import { register, type RegisterCallOptions } from './register.js';

export interface RegisterRetry {
  /** The attempt that failed, from 1. */
  attempt: number;
  attempts: number;
  delayMs: number;
  /** Why it failed; never holds the token. */
  reason: string;
}

export interface RegisterRetryOptions extends RegisterCallOptions {
  /** Tries in all, the first included (default 5). */
  attempts?: number;
  backoff?: Partial<BackoffOptions>;
  onRetry?: (retry: RegisterRetry) => void;
}

/**
 * register(), retried while no answer came back or the coordinator answered
 * 5xx (restarting, overloaded, disk full). body.registrationId must be set and
 * is sent unchanged each time: a try whose answer was lost may have registered
 * the runner, and the coordinator answers the repeat with that same runner
 * instead of spending another use of the token. A 4xx is the coordinator's
 * considered answer (unknown, expired, used up, air-gapped, conflict): thrown at once.
 */
export async function registerWithRetry(
  baseUrl: string,
  registrationToken: string,
  body: RegisterRequestInput & { registrationId: string },
  options: RegisterRetryOptions = {},
): Promise<RegisterResponse> {
  const attempts = options.attempts ?? 5;
  // 0.5 s, 1 s, 2 s, 4 s ceilings (full jitter): about 8 s at most between the five tries.
  const backoff = new Backoff({ baseMs: 500, capMs: 8_000, ...options.backoff });
  const signal = options.signal ?? new AbortController().signal;
  for (let attempt = 1; ; attempt++) {
    try {
      return await register(baseUrl, registrationToken, body, options);
    } catch (err) {
      if (!retryable(err) || attempt >= attempts || signal.aborted) throw err;
      const delayMs = backoff.next();
      options.onRetry?.({ attempt, attempts, delayMs, reason: (err as Error).message });
      if (!(await sleep(delayMs, signal))) throw err;
    }
  }
}

function retryable(err: unknown): boolean {
  if (err instanceof ConnectionError) return true;
  return err instanceof RbtkError && err.status >= 500;
}
