import type { Logger } from '../log.js';

/**
 * A pool whose members fail to come up (an image that does not exist, a
 * provider that refuses at once) would otherwise be retried a batch at a time
 * on every pass. After a failed try it waits 1 s, doubling up to 60 s, and
 * then tries one member; one that turns ready (or a change of the pool's
 * spec) ends it. Pure: the clock is an input.
 */

export const BACKOFF_FIRST_MS = 1000;
export const BACKOFF_MAX_MS = 60_000;

export interface CreateBackoff {
  /** Tries in a row that failed; 0: not backing off. */
  failures: number;
  /** No create before this (ms). */
  retryAt: number;
}

export const NO_BACKOFF: CreateBackoff = { failures: 0, retryAt: 0 };

/** The wait after `failures` failed tries in a row: 1 s, 2 s, 4 s, ... at most 60 s. */
export function backoffDelay(failures: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.max(0, Math.min(failures - 1, 30)));
}

/** How many creates a pass may make now: undefined (no limit), 0 (waiting) or 1 (a try). */
export function createAllowance(b: CreateBackoff, now: number): number | undefined {
  if (b.failures === 0) return undefined;
  return now < b.retryAt ? 0 : 1;
}

/**
 * After a pass: `failed` members of the pool failed to come up (a create
 * that threw, one that died or timed out while warming), `launched` were
 * created without an error. A try that launched waits its step again before
 * the next one: it has not said hello yet.
 */
export function afterPass(b: CreateBackoff, now: number, failed: number, launched: number): CreateBackoff {
  if (failed > 0) return { failures: b.failures + 1, retryAt: now + backoffDelay(b.failures + 1) };
  if (launched > 0 && b.failures > 0) return { failures: b.failures, retryAt: now + backoffDelay(b.failures) };
  return b;
}

interface PoolBackoff {
  /** The spec (JSON) it is for: a changed one starts over. */
  spec: string;
  state: CreateBackoff;
  timer: NodeJS.Timeout | undefined;
}

export interface CreateBackoffsDeps {
  log: Logger;
  now: () => number;
  /** Asks for a pass of the pool: its backoff is over. */
  retry: (poolId: number) => void;
}

/**
 * Every pool's backoff on this coordinator. A pool's passes come at its
 * reconcile interval (30 s by default) and on events; a timer asks for one
 * when a step ends, so the first steps are as short as they say.
 */
export class CreateBackoffs {
  private readonly pools = new Map<number, PoolBackoff>();

  constructor(private readonly deps: CreateBackoffsDeps) {}

  /** The pool's backoff now; a changed spec (a fixed image, say) ends it: the operator wants a try now. */
  of(poolId: number, spec: unknown): CreateBackoff {
    const key = JSON.stringify(spec);
    let b = this.pools.get(poolId);
    if (b?.spec !== key) {
      if (b) clearTimeout(b.timer);
      b = { spec: key, state: NO_BACKOFF, timer: undefined };
      this.pools.set(poolId, b);
    }
    return b.state;
  }

  /** A pass's outcome (afterPass); logs once a step, when a try failed. */
  record(pool: { id: number; name: string; project: string }, spec: unknown, failed: number, launched: number, lastError: string | null): void {
    const before = this.of(pool.id, spec);
    const now = this.deps.now();
    const b = this.pools.get(pool.id)!;
    b.state = afterPass(before, now, failed, launched);
    if (b.state.failures <= before.failures) return;
    const retryInMs = b.state.retryAt - now;
    this.deps.log.warn(
      { pool: pool.name, project: pool.project, failures: b.state.failures, retryInMs, err: lastError },
      'hosted pool: member creates fail, backing off',
    );
    clearTimeout(b.timer);
    b.timer = setTimeout(() => {
      b.timer = undefined;
      this.deps.retry(pool.id);
    }, retryInMs);
    b.timer.unref();
  }

  /** A member the pool made came up: whatever made creates fail is over. */
  succeeded(poolId: number, labels: { pool: string; project: string } | null): void {
    const b = this.pools.get(poolId);
    if (!b || b.state.failures === 0) return;
    clearTimeout(b.timer);
    b.state = NO_BACKOFF;
    this.deps.log.info({ ...labels }, 'hosted pool: a member came up, creates go on');
  }

  /** Pools deleted: their state goes. */
  keepOnly(poolIds: Set<number>): void {
    for (const [id, b] of this.pools) {
      if (poolIds.has(id)) continue;
      clearTimeout(b.timer);
      this.pools.delete(id);
    }
  }

  stop(): void {
    for (const b of this.pools.values()) clearTimeout(b.timer);
  }
}
