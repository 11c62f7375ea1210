export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  /** A connection that lived at least this long resets the backoff. */
  resetAfterMs: number;
  random: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, capMs: 30_000, resetAfterMs: 30_000, random: Math.random };

/**
 * Exponential backoff with full jitter: the n-th delay is uniform in
 * [0, min(cap, base * 2^n)), so a fleet that lost its coordinator at the same
 * instant does not come back at the same instant.
 */
export class Backoff {
  private readonly opts: BackoffOptions;
  /** Failed attempts since the last reset. */
  attempt = 0;

  constructor(options: Partial<BackoffOptions> = {}) {
    this.opts = { ...DEFAULT_BACKOFF, ...options };
  }

  next(): number {
    const ceiling = Math.min(this.opts.capMs, this.opts.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.floor(this.opts.random() * ceiling);
  }

  /** Resets when the connection that just ended lived long enough to count as healthy. */
  connectionEnded(livedMs: number): void {
    if (livedMs >= this.opts.resetAfterMs) this.attempt = 0;
  }

  reset(): void {
    this.attempt = 0;
  }
}
