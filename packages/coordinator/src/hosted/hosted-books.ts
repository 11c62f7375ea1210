import { MemberState, type ReconcileAction } from '@rbtk/protocol';
import type { CoordinatorContext } from '../context.js';
import type { PoolMemberCount } from '../metrics/coordinator-metrics.js';
import type { AutoscaleRow } from '../store/hosted-store.js';
import type { PoolRecord } from '../store/rows.js';
import type { MemberRegistry } from './hosted-members.js';
import { type AutoscaleState, type ClaimSample, type PoolSize, pruneSamples, pushSample } from './sizing.js';

/*
 * Each hosted pool's bookkeeping in this process: its recent actions and
 * last pass (rbtk pool show), its claims over time and autoscale state (kept
 * in the store across restarts), what it last sized to, and the per-state
 * member counts /metrics reports.
 */

const RECENT_ACTIONS = 20;

export interface PoolBook {
  actions: ReconcileAction[];
  lastReconcileAt: number | null;
  /** Concurrent claims over time (autoscale's input), compacted by pushSample. */
  samples: ClaimSample[];
  autoscale: AutoscaleState | null;
  /** The autoscale row as last written (or loaded): a pass writes only when it differs. */
  saved: string | null;
  /** What the last pass sized to. */
  size: PoolSize | null;
  labels: { project: string; pool: string } | null;
}

export class PoolBooks {
  private readonly books = new Map<number, PoolBook>();

  constructor(
    private readonly ctx: CoordinatorContext,
    private readonly members: MemberRegistry,
  ) {}

  of(poolId: number): PoolBook {
    let b = this.books.get(poolId);
    if (!b) {
      b = { actions: [], lastReconcileAt: null, samples: [], autoscale: null, saved: null, size: null, labels: null };
      this.books.set(poolId, b);
    }
    return b;
  }

  /** The pool's book, with its names for logs and /metrics. */
  note(pool: PoolRecord): PoolBook {
    const book = this.of(pool.id);
    book.labels = { project: pool.project, pool: pool.name };
    return book;
  }

  /** Deleted pools drop out (of /metrics too). */
  keepOnly(poolIds: Set<number>): void {
    for (const id of this.books.keys()) if (!poolIds.has(id)) this.books.delete(id);
  }

  /** Autoscale goes on where it was after a restart: its target, its 4 h clock and the claims of the last 30 min. */
  loadAutoscale(rows: AutoscaleRow[]): void {
    for (const row of rows) {
      const book = this.of(row.poolId);
      book.autoscale = row.state;
      book.samples = row.samples;
      book.saved = JSON.stringify(row);
    }
  }

  act(poolId: number, action: ReconcileAction['action'], memberId: string, reason: string): void {
    const book = this.of(poolId);
    book.actions.push({ at: new Date(this.ctx.now()).toISOString(), action, memberId, reason });
    if (book.actions.length > RECENT_ACTIONS) book.actions.splice(0, book.actions.length - RECENT_ACTIONS);
    this.ctx.log.info({ pool: book.labels?.pool, project: book.labels?.project, memberId, action, reason }, 'hosted pool member');
  }

  /** Records the pool's concurrent claims now (autoscale's peak is taken over these). */
  sampleClaims(poolId: number): void {
    const book = this.of(poolId);
    let claimed = 0;
    for (const m of this.members.all()) if (m.poolId === poolId && m.state === 'claimed' && !this.members.released.has(m.id)) claimed++;
    const now = this.ctx.now();
    pushSample(book.samples, { at: now, claimed });
    pruneSamples(book.samples, now);
  }

  /**
   * Keeps what autoscale needs in the store, so a restart goes on from it
   * instead of from the spec's target. Once per pass and only when it
   * changed: pushSample leaves the samples as they were while the count of
   * claims stays the same, so a quiet pool writes nothing.
   */
  async persistSizing(poolId: number, book: PoolBook): Promise<void> {
    const row = { poolId, state: book.autoscale, samples: book.samples };
    const json = JSON.stringify(row);
    if (json === book.saved) return;
    await this.ctx.store.hosted.saveAutoscale(row, this.ctx.now());
    book.saved = json;
  }

  /** rbtk_pool_members: every state of every pool a pass has seen, 0 where it has none. */
  memberCounts(): PoolMemberCount[] {
    const counts = new Map<number, Record<MemberState, number>>();
    for (const [poolId, book] of this.books) {
      if (book.labels) counts.set(poolId, Object.fromEntries(MemberState.options.map((st) => [st, 0])) as Record<MemberState, number>);
    }
    for (const m of this.members.all()) {
      const c = counts.get(m.poolId);
      if (c) c[m.state]++;
    }
    const out: PoolMemberCount[] = [];
    for (const [poolId, c] of counts) {
      const labels = this.of(poolId).labels!;
      for (const [state, count] of Object.entries(c)) out.push({ ...labels, state, count });
    }
    return out;
  }
}
