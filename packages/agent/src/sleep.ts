import { setTimeout as delay } from 'node:timers/promises';

/** Sleeps ms; resolves true when the time passed, false when the signal aborted first. */
export async function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  try {
    await delay(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}
