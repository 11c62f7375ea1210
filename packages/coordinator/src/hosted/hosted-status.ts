import type { HostedPoolStatus, MemberState } from '@rbtk/protocol';
import type { PoolRecord } from '../store/rows.js';
import type { HostedCore } from './hosted-core.js';
import { poolSize } from './sizing.js';
import { specHash } from './spec-hash.js';

/* What `rbtk pool show` prints for a hosted pool: its size, members (from the store) and recent actions. */

export async function poolStatus(core: HostedCore, pool: PoolRecord): Promise<HostedPoolStatus> {
  const { ctx } = core;
  const spec = pool.hostedSpec!;
  const hash = specHash(spec, core.deps.agentMark ?? '', core.deps.url());
  const rows = await ctx.store.hosted.members(pool.id);
  const counts: Record<MemberState, number> = { warming: 0, ready: 0, stopped: 0, claimed: 0, errored: 0 };
  for (const m of rows) counts[m.state]++;
  const book = core.books.of(pool.id);
  const size = book.size ?? poolSize(spec, book.autoscale?.target ?? null, ctx.now());
  const claims = await ctx.store.hosted.claimCounts(pool.id);
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    pool: pool.name,
    spec,
    target: size.target,
    hot: size.hot,
    schedule: size.schedule,
    counts,
    members: rows.map((m) => ({
      id: m.id,
      state: m.state,
      runnerId: m.runnerId,
      jobId: m.state === 'claimed' ? m.jobId : null,
      current: m.specHash === hash,
      error: m.error,
      createdAt: iso(m.createdAt),
      stateChangedAt: iso(m.stateChangedAt),
    })),
    warmHits: claims.hits,
    warmMisses: claims.misses,
    recentActions: [...book.actions],
    lastReconcileAt: book.lastReconcileAt === null ? null : iso(book.lastReconcileAt),
  };
}
