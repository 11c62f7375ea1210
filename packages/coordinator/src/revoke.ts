import type { Runner } from '@rbtk/protocol';
import { CloseCode } from '@rbtk/protocol';
import { auditRow } from './audit.js';
import type { CoordinatorContext } from './context.js';
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
 * 4401 so the agent stops at once. Returns the runner as last seen, or null.
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
  await ctx.jobs.runnerGone(input.runnerId, 'runner_revoked');
  ctx.log.warn({ runnerId: revoked.id, pool: revoked.poolName, project: revoked.project, reason: input.reason }, 'runner revoked');
  return toRunner(revoked, connected);
}
