/**
 * The accept deadlines of assigned attempts, on one timer. Every deadline is
 * the same span after its start, so a Map in insertion order is also in
 * deadline order: expiring walks from the front and stops at the first one
 * not yet due. Cheaper than a setTimeout per assignment at thousands a second.
 */
export class AcceptTimers {
  private readonly pending = new Map<string, { attempt: number; runnerId: string; due: number }>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly timeoutMs: number,
    private readonly expired: (jobId: string, attempt: number, runnerId: string) => void,
  ) {}

  start(jobId: string, attempt: number, runnerId: string): void {
    // Delete first: a re-set key would keep its old place in the order.
    this.pending.delete(jobId);
    this.pending.set(jobId, { attempt, runnerId, due: performance.now() + this.timeoutMs });
    this.timer ??= setTimeout(() => this.expire(), this.timeoutMs);
  }

  /** Waits for the attempt's accept, unless its deadline is set already (that one stands). */
  keep(jobId: string, attempt: number, runnerId: string): void {
    if (this.pending.get(jobId)?.attempt !== attempt) this.start(jobId, attempt, runnerId);
  }

  /**
   * Stops waiting for the job's attempt (any attempt when none is named). Given
   * a runner, only when the deadline is that runner's: another runner knowing
   * the job id must not cancel it (its accept would keep the job assigned forever).
   */
  clear(jobId: string, attempt?: number, runnerId?: string): void {
    const p = this.pending.get(jobId);
    if (!p || (attempt !== undefined && p.attempt !== attempt) || (runnerId !== undefined && p.runnerId !== runnerId)) return;
    this.pending.delete(jobId);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending.clear();
  }

  private expire(): void {
    this.timer = null;
    const now = performance.now();
    for (const [jobId, p] of this.pending) {
      if (p.due > now) {
        // An expired callback may have armed a timer (start() again, for a later deadline): this one is sooner.
        if (this.timer) clearTimeout(this.timer);
        this.timer = setTimeout(() => this.expire(), p.due - now);
        return;
      }
      this.pending.delete(jobId);
      this.expired(jobId, p.attempt, p.runnerId);
    }
  }
}
