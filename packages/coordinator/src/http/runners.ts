import { ErrorCode, RbtkError, ROUTES } from '@rbtk/protocol';
import { actorOf } from '../auth/api-auth.js';
import type { CoordinatorContext } from '../context.js';
import { setRunnerDraining } from '../drain.js';
import { revokeRunner } from '../revoke.js';
import type { RunnerRecord } from '../store/rows.js';
import { toRunner } from '../wire.js';
import { adminScope } from './access.js';
import type { Route } from './router.js';

/** A runner of another project is as unknown as a missing one: ids do not leak across projects. */
async function findRunner(ctx: CoordinatorContext, project: string, id: string): Promise<RunnerRecord> {
  const runner = await ctx.store.runners.get(id);
  if (!runner || runner.project !== project) {
    throw new RbtkError(ErrorCode.NotFound, `runner "${id}" not found in project "${project}"`);
  }
  return runner;
}

export const runnerRoutes: Route[] = [
  {
    method: 'GET',
    path: ROUTES.runners,
    handler: async (rc) => {
      const { project } = await adminScope(rc);
      const pool = rc.url.searchParams.get('pool') ?? undefined;
      if (pool !== undefined && !(await rc.ctx.store.pools.get(project, pool))) {
        throw new RbtkError(ErrorCode.NotFound, `pool "${pool}" not found in project "${project}"`);
      }
      const runners = await rc.ctx.store.runners.list(project, pool);
      return { status: 200, body: runners.map((r) => toRunner(r, rc.ctx.sessions.has(r.id))) };
    },
  },
  {
    method: 'GET',
    path: ROUTES.runner(':id'),
    handler: async (rc) => {
      const { project } = await adminScope(rc);
      const runner = await findRunner(rc.ctx, project, rc.params.id!);
      return { status: 200, body: toRunner(runner, rc.ctx.sessions.has(runner.id)) };
    },
  },
  {
    method: 'POST',
    path: ROUTES.runnerRevoke(':id'),
    handler: async (rc) => {
      const { principal, project } = await adminScope(rc);
      const found = await findRunner(rc.ctx, project, rc.params.id!);
      const revoked = await revokeRunner(rc.ctx, { runnerId: found.id, actor: actorOf(principal), reason: 'revoked by operator' });
      // Gone between the lookup and the revoke: someone else revoked or reaped it.
      if (!revoked) throw new RbtkError(ErrorCode.NotFound, `runner "${found.id}" not found in project "${project}"`);
      return { status: 200, body: revoked };
    },
  },
  ...(
    [
      [true, ROUTES.runnerDrain(':id')],
      [false, ROUTES.runnerResume(':id')],
    ] as const
  ).map(
    ([draining, path]): Route => ({
      method: 'POST',
      path,
      handler: async (rc) => {
        const { principal, project } = await adminScope(rc);
        const found = await findRunner(rc.ctx, project, rc.params.id!);
        const after = await setRunnerDraining(rc.ctx, { runnerId: found.id, draining, actor: actorOf(principal) });
        if (!after) throw new RbtkError(ErrorCode.NotFound, `runner "${found.id}" not found in project "${project}"`);
        return { status: 200, body: toRunner(after, rc.ctx.sessions.has(after.id)) };
      },
    }),
  ),
];
