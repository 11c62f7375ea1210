import { coerceError } from '@rbtk/protocol';
import { revokeRunner } from '../revoke.js';
import type { PoolRecord } from '../store/rows.js';
import { ACTOR, type HostedCore } from './hosted-core.js';

/*
 * Orphan member runners: a hosted pool's runner the coordinator registered
 * for a member (no registration token) that never connected and that no
 * member row names. A crash between registering it and saving it on its
 * member leaves one; nothing else would ever remove it (it has no member to
 * be removed with, and --reap-after may be long or off), so it would sit
 * OFFLINE in `rbtk runner list` for good. Each is revoked, with its audit row.
 */

/**
 * How long a member runner registered by this process may go unnamed by a
 * member: createMember names it right after registering it, so only a
 * store that hangs for this long makes the grace matter. One registered
 * before this process started needs none: no create of this process holds it.
 */
const ORPHAN_GRACE_MS = 10 * 60_000;

/** Revokes the orphan runners of the pools; startedAt: when this process's hosted pools started. */
export async function removeOrphanRunners(core: HostedCore, pools: PoolRecord[], startedAt: number): Promise<void> {
  const { ctx } = core;
  const now = ctx.now();
  for (const pool of pools) {
    for (const r of await ctx.store.runners.list(pool.project, pool.name)) {
      if (r.registrationTokenId !== null || r.lastHeartbeatAt !== null || core.members.hasRunner(r.id)) continue;
      if (r.registeredAt >= startedAt && now - r.registeredAt < ORPHAN_GRACE_MS) continue;
      try {
        await revokeRunner(ctx, {
          runnerId: r.id,
          actor: ACTOR,
          reason: 'hosted member runner orphaned: no member, never connected',
          details: { registeredAt: new Date(r.registeredAt).toISOString() },
        });
        ctx.log.info({ runnerId: r.id, name: r.name, pool: pool.name, project: pool.project }, 'hosted pool: removed an orphan member runner');
      } catch (err) {
        ctx.log.warn({ err: coerceError(err), runnerId: r.id, pool: pool.name }, 'hosted pool: removing an orphan member runner failed');
      }
    }
  }
}
