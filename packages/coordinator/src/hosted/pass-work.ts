import { coerceError } from '@rbtk/protocol';
import type { ReconcilePlan } from './reconciler.js';

/**
 * What one reconcile pass started (removals, creates, stops, starts), waited
 * for as a whole: each failure is kept with what it was and whose, never
 * left to reject on its own, and never cuts the wait for the others short.
 */
export class PassWork {
  private readonly items: Promise<void>[] = [];
  readonly failures: { what: string; memberId: string | null; err: Error }[] = [];
  /** Members created without an error / that failed to come up (a create that threw, one dead or stuck while warming). */
  launched = 0;
  launchFailed = 0;
  lastCreateError: string | null = null;
  /** Removals that went through (a failed one is retried by a later pass, not at once). */
  removed = 0;
  decided: ReconcilePlan | null = null;
  /** Why the pass failed once its work is done (the pool's provider did not answer), if it did. */
  error: Error | null = null;

  add(what: string, memberId: string | null, work: Promise<unknown>): void {
    this.items.push(
      work.then(
        () => undefined,
        (err: unknown) => void this.failures.push({ what, memberId, err: coerceError(err) }),
      ),
    );
  }

  /** Resolves when everything added has settled; never rejects. */
  async settled(): Promise<void> {
    await Promise.all(this.items);
  }
}
