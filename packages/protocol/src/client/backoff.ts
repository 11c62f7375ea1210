/** Reconnect timing of the submitter client: exponential, jittered, abortable. */
export interface BackoffOptions {
  /** First delay (default 250 ms). */
  initialDelayMs?: number;
  /** Largest delay (default 10 s). */
  maxDelayMs?: number;
  /** Stop trying after this long without a connection (default 2 min). */
  giveUpAfterMs?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { initialDelayMs: 250, maxDelayMs: 10_000, giveUpAfterMs: 120_000 };

/**
 * Delay before reconnect attempt `n` (0-based): the exponential step with "equal jitter"
 * (half fixed, half random), so many clients dropped at once do not come back in step.
 */
export function backoffDelay(n: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const { initialDelayMs, maxDelayMs } = { ...DEFAULT_BACKOFF, ...options };
  const step = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(n, 30));
  return step / 2 + random() * (step / 2);
}

/** Sleeps `ms`, or less when `signal` aborts (then resolves false). */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const done = (completed: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(completed);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
