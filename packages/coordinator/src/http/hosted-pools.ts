import { ErrorCode, HostedPoolSpec, HostedPoolUpdate, RbtkError, ROUTES } from '@rbtk/protocol';
import { actorOf } from '../auth/api-auth.js';
import { auditRow } from '../audit.js';
import type { CoordinatorContext } from '../context.js';
import type { HostedPools } from '../hosted/hosted-pools.js';
import type { PoolRecord } from '../store/rows.js';
import { adminScope } from './access.js';
import { readJson } from './body.js';
import type { Route } from './router.js';

async function findHostedPool(ctx: CoordinatorContext, project: string, name: string): Promise<{ pool: PoolRecord; hosted: HostedPools }> {
  const pool = await ctx.store.pools.get(project, name);
  if (!pool) throw new RbtkError(ErrorCode.NotFound, `pool "${name}" not found in project "${project}"`);
  if (!pool.hostedSpec) throw new RbtkError(ErrorCode.BadRequest, `pool "${name}" is not a hosted pool`);
  if (!ctx.hosted) throw new RbtkError(ErrorCode.Unavailable, 'hosted pools are not running on this coordinator');
  return { pool, hosted: ctx.hosted };
}

/** A spec with an update applied, validated as a whole (min <= target <= max and the like). */
function mergeSpec(current: HostedPoolSpec, change: HostedPoolUpdate): HostedPoolSpec {
  const merged = HostedPoolSpec.safeParse({ ...current, ...change });
  if (!merged.success) {
    const issue = merged.error.issues[0]!;
    throw new RbtkError(ErrorCode.BadRequest, `invalid hosted spec: ${issue.path.join('.') || 'hosted'}: ${issue.message}`);
  }
  return merged.data;
}

/** A hosted pool's members and claims (GET), its spec changed (POST), a reconcile pass forced (POST). */
export const hostedPoolRoutes: Route[] = [
  {
    method: 'GET',
    path: ROUTES.poolHosted(':name'),
    handler: async (rc) => {
      const { project } = await adminScope(rc);
      const { pool, hosted } = await findHostedPool(rc.ctx, project, rc.params.name!);
      return { status: 200, body: await hosted.status(pool) };
    },
  },
  {
    method: 'POST',
    path: ROUTES.poolHosted(':name'),
    handler: async (rc) => {
      const { principal, project } = await adminScope(rc);
      const { pool, hosted } = await findHostedPool(rc.ctx, project, rc.params.name!);
      const change = await readJson(rc.req, HostedPoolUpdate);
      const now = rc.ctx.now();
      // Merged with the spec as stored when it is written: two updates at once both stick.
      const spec = await rc.ctx.store.hosted.updateSpec(
        pool.id,
        (current) => mergeSpec(current, change),
        now,
        auditRow({ at: now, actor: actorOf(principal), action: 'pool.update', resourceType: 'pool', resourceId: pool.name, project, details: { hosted: change } }),
      );
      rc.ctx.jobs.routingChanged();
      const updated = { ...pool, hostedSpec: spec };
      await hosted.reconcile(pool.id);
      return { status: 200, body: await hosted.status(updated) };
    },
  },
  {
    method: 'POST',
    path: ROUTES.poolReconcile(':name'),
    handler: async (rc) => {
      const { project } = await adminScope(rc);
      const { pool, hosted } = await findHostedPool(rc.ctx, project, rc.params.name!);
      await hosted.reconcile(pool.id);
      return { status: 200, body: await hosted.status(pool) };
    },
  },
];
