import { ErrorCode, RbtkError, ROUTES } from '@rbtk/protocol';
import { computePoolStats } from '../metrics/pool-stats.js';
import { adminScope } from './access.js';
import type { Route } from './router.js';

export const statsRoutes: Route[] = [
  {
    method: 'GET',
    path: ROUTES.stats,
    handler: async (rc) => {
      const { project } = await adminScope(rc);
      const now = rc.ctx.now();
      const pools = await rc.ctx.store.pools.list(project);
      return { status: 200, body: await Promise.all(pools.map((pool) => computePoolStats(rc.ctx.store.stats, rc.ctx.metrics.jobCounts, pool, now))) };
    },
  },
  {
    method: 'GET',
    path: ROUTES.poolStats(':name'),
    handler: async (rc) => {
      const { project } = await adminScope(rc);
      const name = rc.params.name!;
      const pool = await rc.ctx.store.pools.get(project, name);
      if (!pool) throw new RbtkError(ErrorCode.NotFound, `pool "${name}" not found in project "${project}"`);
      return { status: 200, body: await computePoolStats(rc.ctx.store.stats, rc.ctx.metrics.jobCounts, pool, rc.ctx.now()) };
    },
  },
];
