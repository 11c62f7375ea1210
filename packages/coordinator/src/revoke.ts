import type { Runner } from '@rbtk/protocol';
import { CloseCode, coerceError } from '@rbtk/protocol';
import { auditRow } from './audit.js';
import type { CoordinatorContext } from './context.js';
import { RETRY_FIRST_DELAY_MS, retryWithBackoff } from './retry.js';
import { toRunner } from './wire.js';

export interface RevokeInput {
  runnerId: string;
  actor: string;
  reason: string;
  /** Extra audit details (ids only, never a secret). */
  details?: Record<string, unknown>;
}

/**
 * Revokes a runner: deletes it, turns its tokens into revoked tombstones and
 * writes the audit row in one transaction, then closes its live socket with
 * 4401 so the agent stops at once, and requeues its attempts. Returns the
 * runner as last seen, or null.
 */
export async function revokeRunner(ctx: CoordinatorContext, input: RevokeInput): Promise<Runner | null> {
  const now = ctx.now();
  const connected = ctx.sessions.has(input.runnerId);
  const revoked = await ctx.store.runners.revoke(input.runnerId, now, (runner) =>
    auditRow({
      at: now,
      actor: input.actor,
      action: 'runner.revoke',
      resourceType: 'runner',
      resourceId: runner.id,
      project: runner.project,
      details: { reason: input.reason, name: runner.name, pool: runner.poolName, ...input.details },
    }),
  );
  if (!revoked) return null;
  ctx.sessions.close(input.runnerId, CloseCode.Revoked, 'runner revoked');
  // A second transaction: should we crash in between, resume() at start requeues jobs of runners that are gone.
  ctx.jobs.index.remove(input.runnerId);
  ctx.jobs.routingChanged();
  await requeueRevoked(ctx, input.runnerId);
  ctx.log.warn({ runnerId: revoked.id, pool: revoked.poolName, project: revoked.project, reason: input.reason }, 'runner revoked');
  return toRunner(revoked, connected);
}

/**
 * The revoked runner's attempts requeued (runner_revoked). Nothing names a
 * revoked runner again (it is deleted: liveness never marks it, and only a
 * restart's resume() would find its jobs), so when the store refuses the
 * requeue (a full disk) it is tried again with backoff until the store takes
 * it or the coordinator stops. Resolves after the first try, taken or not:
 * the revoke itself is committed either way.
 */
async function requeueRevoked(ctx: CoordinatorContext, runnerId: string): Promise<void> {
  const requeue = () => ctx.jobs.runnerGone(runnerId, 'runner_revoked');
  try {
    await requeue();
  } catch (err) {
    const log = ctx.log.child({ runnerId });
    log.error({ err: coerceError(err), retryInMs: RETRY_FIRST_DELAY_MS }, "requeue of a revoked runner's jobs failed: trying again");
    void retryWithBackoff(requeue, { log, what: "requeue of a revoked runner's jobs", signal: ctx.jobs.stopped });
  }
}
