import {
  CloseCode,
  ErrorCode,
  parseDuration,
  PoolCreate,
  RbtkError,
  RegistrationTokenCreate,
  ROUTES,
  TokenKind,
} from '@rbtk/protocol';
import { actorOf } from '../auth/api-auth.js';
import { mintToken } from '../auth/secrets.js';
import { auditRow } from '../audit.js';
import type { CoordinatorContext } from '../context.js';
import { setPoolStatus } from '../drain.js';
import type { PoolRecord } from '../store/rows.js';
import { toPool, toRegistrationToken } from '../wire.js';
import { adminScope } from './access.js';
import { readJson } from './body.js';
import type { Route } from './router.js';

async function findPool(ctx: CoordinatorContext, project: string, name: string): Promise<PoolRecord> {
  const pool = await ctx.store.pools.get(project, name);
  if (!pool) throw new RbtkError(ErrorCode.NotFound, `pool "${name}" not found in project "${project}"`);
  return pool;
}

/** A hosted pool has a spec, a self-hosted one none. */
function checkHostedCreate(body: PoolCreate): void {
  if (body.type === 'hosted' && !body.hosted) {
    throw new RbtkError(ErrorCode.BadRequest, 'invalid request body: hosted: a hosted pool needs its spec (provider, target, ...)');
  }
  if (body.type !== 'hosted' && body.hosted) {
    throw new RbtkError(ErrorCode.BadRequest, 'invalid request body: hosted: only a pool of type hosted takes a hosted spec');
  }
}

export const poolRoutes: Route[] = [
  {
    method: 'GET',
    path: ROUTES.pools,
    handler: async (rc) => {
      const { project } = await adminScope(rc);
      return { status: 200, body: (await rc.ctx.store.pools.list(project)).map(toPool) };
    },
  },
  {
    method: 'POST',
    path: ROUTES.pools,
    handler: async (rc) => {
      const { principal, project } = await adminScope(rc);
      const body = await readJson(rc.req, PoolCreate);
      checkHostedCreate(body);
      const now = rc.ctx.now();
      const created = await rc.ctx.store.pools.create(
        {
          project,
          name: body.name,
          type: body.type,
          status: 'active',
          tags: body.tags,
          airgapped: body.airgapped,
          allowNonAirgappedJobs: body.allowNonAirgappedJobs,
          dockerNetwork: body.dockerNetwork,
          hostedSpec: body.hosted ?? null,
          createdAt: now,
          updatedAt: now,
        },
        auditRow({
          at: now,
          actor: actorOf(principal),
          action: 'pool.create',
          resourceType: 'pool',
          resourceId: body.name,
          project,
          details: {
            type: body.type,
            airgapped: body.airgapped,
            tags: body.tags,
            allowNonAirgappedJobs: body.allowNonAirgappedJobs,
            dockerNetwork: body.dockerNetwork,
            ...(body.hosted ? { hosted: body.hosted } : {}),
          },
        }),
      );
      if (!created) throw new RbtkError(ErrorCode.Conflict, `pool "${body.name}" already exists in project "${project}"`);
      rc.ctx.jobs.routingChanged();
      if (created.hostedSpec) rc.ctx.hosted?.reconcileSoon(created.id);
      return { status: 201, body: toPool(created) };
    },
  },
  {
    method: 'GET',
    path: ROUTES.pool(':name'),
    handler: async (rc) => {
      const { project } = await adminScope(rc);
      return { status: 200, body: toPool(await findPool(rc.ctx, project, rc.params.name!)) };
    },
  },
  {
    method: 'DELETE',
    path: ROUTES.pool(':name'),
    handler: async (rc) => {
      const { principal, project } = await adminScope(rc);
      const name = rc.params.name!;
      const result = await rc.ctx.store.pools.delete(
        project,
        name,
        auditRow({ at: rc.ctx.now(), actor: actorOf(principal), action: 'pool.delete', resourceType: 'pool', resourceId: name, project }),
      );
      if (result.kind === 'not_found') throw new RbtkError(ErrorCode.NotFound, `pool "${name}" not found in project "${project}"`);
      if (result.kind === 'busy') {
        throw new RbtkError(
          ErrorCode.Conflict,
          `pool ${name} still has ${result.onlineRunners} online runner(s) and ${result.jobsInFlight} job(s) in flight — drain it first`,
        );
      }
      // A hosted pool is deleted only once it has no members: set its target to 0 (or drain it) first.
      if (result.kind === 'hosted_members') {
        throw new RbtkError(
          ErrorCode.Conflict,
          `pool ${name} still has ${result.members} hosted member(s) — set --target 0 --min 0 (or drain it) and wait for them to go`,
        );
      }
      if (result.kind === 'queued_jobs') {
        throw new RbtkError(ErrorCode.Conflict, `pool ${name} still has ${result.jobs} queued job(s) — cancel them first (rbtk job cancel)`);
      }
      rc.ctx.jobs.routingChanged();
      // Offline runners may still hold a (silent) socket; their tokens are gone now.
      for (const id of result.runnerIds) rc.ctx.sessions.close(id, CloseCode.Revoked, 'pool deleted');
      return { status: 204 };
    },
  },
  ...(
    [
      ['draining', ROUTES.poolDrain(':name')],
      ['paused', ROUTES.poolPause(':name')],
      ['active', ROUTES.poolResume(':name')],
    ] as const
  ).map(
    ([status, path]): Route => ({
      method: 'POST',
      path,
      handler: async (rc) => {
        const { principal, project } = await adminScope(rc);
        const pool = await findPool(rc.ctx, project, rc.params.name!);
        const after = await setPoolStatus(rc.ctx, { pool, status, actor: actorOf(principal) });
        if (!after) throw new RbtkError(ErrorCode.NotFound, `pool "${pool.name}" not found in project "${project}"`);
        return { status: 200, body: toPool(after) };
      },
    }),
  ),
  {
    method: 'POST',
    path: ROUTES.poolTokens(':name'),
    handler: async (rc) => {
      const { principal, project } = await adminScope(rc);
      const pool = await findPool(rc.ctx, project, rc.params.name!);
      const body = await readJson(rc.req, RegistrationTokenCreate);
      const ttlMs = parseDuration(body.ttl); // longer than 0s and at most ten years: the schema's PositiveDuration
      const now = rc.ctx.now();
      const minted = mintToken(TokenKind.Registration);
      const row = {
        id: minted.id,
        poolId: pool.id,
        hash: minted.hash,
        expiresAt: now + ttlMs,
        usesLeft: body.uses ?? null,
        createdBy: actorOf(principal),
        createdAt: now,
      };
      await rc.ctx.store.registrationTokens.insert(
        row,
        auditRow({
          at: now,
          actor: actorOf(principal),
          action: 'token.mint',
          resourceType: 'token',
          resourceId: minted.id,
          project,
          details: { pool: pool.name, ttl: body.ttl, uses: body.uses ?? null },
        }),
      );
      const record = { ...row, poolName: pool.name, project, poolAirgapped: pool.airgapped };
      return { status: 201, body: toRegistrationToken(record, minted.token) };
    },
  },
];
