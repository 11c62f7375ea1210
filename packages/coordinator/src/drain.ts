import type { PoolStatus } from '@rbtk/protocol';
import { type AuditAction, auditRow } from './audit.js';
import type { CoordinatorContext } from './context.js';
import type { PoolRecord, RunnerRecord } from './store/rows.js';

/*
 * Drains, pauses and resumes. A runner is DRAINING while an operator drained
 * it (runners.draining, kept across reconnects), its pool drains, or it drains
 * itself (runners.self_drain: rbtk-runner drain, stopping, a pending upgrade).
 * A DRAINING runner gets no new job; a paused or draining pool starts none.
 */

type DrainFacts = Pick<RunnerRecord, 'draining' | 'poolStatus' | 'poolName'>;

/** Why the coordinator drains the runner (its operator, its pool), in that order. */
function coordinatorReasons(r: DrainFacts): string[] {
  const reasons: string[] = [];
  if (r.draining) reasons.push('drained by an operator (rbtk runner drain)');
  if (r.poolStatus === 'draining') reasons.push(`pool ${r.poolName} is draining`);
  return reasons;
}

/** The coordinator's side of a runner's drain (the operator's, its pool's), as told to the runner; null: neither. */
export function coordinatorDrainReason(r: DrainFacts): string | null {
  return coordinatorReasons(r)[0] ?? null;
}

/** Every reason the runner is DRAINING, its own first; empty when it takes jobs. */
export function drainReasons(r: DrainFacts & Pick<RunnerRecord, 'selfDrain'>): string[] {
  return [...(r.selfDrain ? [r.selfDrain] : []), ...coordinatorReasons(r)];
}

/**
 * An operator drains (or resumes) one runner: stored with its audit row, then
 * its live session (if any) hears at once and dispatch follows. Null when the
 * runner is gone.
 */
export async function setRunnerDraining(
  ctx: CoordinatorContext,
  input: { runnerId: string; draining: boolean; actor: string },
): Promise<RunnerRecord | null> {
  const runner = await ctx.store.runners.setDraining(input.runnerId, input.draining, (r) =>
    auditRow({
      at: ctx.now(),
      actor: input.actor,
      action: input.draining ? 'runner.drain' : 'runner.resume',
      resourceType: 'runner',
      resourceId: r.id,
      project: r.project,
      details: { name: r.name, pool: r.poolName, by: 'operator' },
    }),
  );
  if (!runner) return null;
  ctx.sessions.get(runner.id)?.drainChanged?.(runner);
  ctx.log.info({ runnerId: runner.id, draining: input.draining, status: runner.status, actor: input.actor }, input.draining ? 'runner drained' : 'runner resumed');
  return runner;
}

const POOL_ACTION: Record<PoolStatus, AuditAction> = { draining: 'pool.drain', paused: 'pool.pause', active: 'pool.resume' };

/**
 * An operator drains, pauses or resumes a pool: stored with its audit row
 * (the runners' statuses follow in the same transaction), then its connected
 * runners hear, and dispatch holds or starts the pool's queued jobs.
 */
export async function setPoolStatus(
  ctx: CoordinatorContext,
  input: { pool: PoolRecord; status: PoolStatus; actor: string },
): Promise<PoolRecord | null> {
  const { pool, status } = input;
  const now = ctx.now();
  const after = await ctx.store.pools.setStatus(
    pool.project,
    pool.name,
    status,
    now,
    auditRow({
      at: now,
      actor: input.actor,
      action: POOL_ACTION[status],
      resourceType: 'pool',
      resourceId: pool.name,
      project: pool.project,
      details: { from: pool.status, to: status },
    }),
  );
  if (!after) return null;
  for (const runner of await ctx.store.runners.list(pool.project, pool.name)) ctx.sessions.get(runner.id)?.drainChanged?.(runner);
  // Runners first: resuming the pool then kicks one dispatch pass that sees their slots.
  ctx.jobs.poolStatusChanged(after.id, status);
  // A hosted pool acts on it at once: drained, its ready members go and none is replenished; resumed, it refills.
  if (after.hostedSpec) ctx.hosted?.reconcileSoon(after.id);
  ctx.log.info({ pool: pool.name, project: pool.project, from: pool.status, status, actor: input.actor }, 'pool status changed');
  return after;
}
