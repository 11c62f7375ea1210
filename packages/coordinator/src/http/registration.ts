import {
  ErrorCode,
  parseToken,
  RbtkError,
  RegisterRequest,
  type RegisterResponse,
  ROUTES,
  TokenKind,
} from '@rbtk/protocol';
import { bearerToken } from '../auth/bearer.js';
import { mintToken, randomId, verifySecret } from '../auth/secrets.js';
import { auditRow } from '../audit.js';
import type { CoordinatorContext } from '../context.js';
import type { RegistrationTokenRecord } from '../store/rows.js';
import { readJson } from './body.js';
import type { Route } from './router.js';

const unknownToken = () => new RbtkError(ErrorCode.TokenUnknown, 'registration token is unknown');
const expired = (at: number) =>
  new RbtkError(ErrorCode.TokenExpired, `registration token expired at ${new Date(at).toISOString()}`);
const usedUp = () => new RbtkError(ErrorCode.TokenUsedUp, 'registration token has no uses left');

/** Checks the bearer registration token; a refusal here consumes nothing. */
async function checkRegistrationToken(ctx: CoordinatorContext, raw: string | null): Promise<RegistrationTokenRecord> {
  if (!raw) {
    throw new RbtkError(ErrorCode.Unauthorized, 'missing registration token: send "Authorization: Bearer rbtk_reg_..."');
  }
  const parsed = parseToken(raw);
  if (!parsed || parsed.kind !== TokenKind.Registration) throw unknownToken();
  const record = await ctx.store.registrationTokens.get(parsed.id);
  if (!record || !verifySecret(parsed.secret, record.hash)) throw unknownToken();
  if (record.expiresAt <= ctx.now()) throw expired(record.expiresAt);
  if (record.usesLeft !== null && record.usesLeft <= 0) throw usedUp();
  return record;
}

/** POST /v1/runners/register: a registration token buys a runner id and its first runner token. */
export const registrationRoutes: Route[] = [
  {
    method: 'POST',
    path: ROUTES.register,
    handler: async ({ req, ctx }) => {
      const record = await checkRegistrationToken(ctx, bearerToken(req.headers));
      const body = await readJson(req, RegisterRequest);
      if (record.poolAirgapped && !body.airgapped) {
        throw new RbtkError(
          ErrorCode.AirgappedRequired,
          `pool ${record.poolName} is air-gapped: only runners registered with --airgapped may join`,
        );
      }
      const now = ctx.now();
      const runnerId = randomId(16);
      const token = mintToken(TokenKind.Runner);
      const result = await ctx.store.runners.register({
        registrationTokenId: record.id,
        now,
        runner: {
          id: runnerId,
          poolId: record.poolId,
          name: body.name,
          labels: body.labels,
          airgapped: body.airgapped,
          status: 'OFFLINE', // until its first hello
          draining: false,
          agentVersion: body.agentVersion ?? null,
          host: body.host ?? null,
          capabilities: null,
          registrationTokenId: record.id,
          registeredAt: now,
          lastHeartbeatAt: null,
        },
        token: { id: token.id, runnerId, hash: token.hash, state: 'current', createdAt: now },
        audit: auditRow({
          at: now,
          actor: `registration:${record.id}`,
          action: 'runner.register',
          resourceType: 'runner',
          resourceId: runnerId,
          project: record.project,
          details: { name: body.name, pool: record.poolName, airgapped: body.airgapped },
        }),
      });
      if (result === 'unknown') throw unknownToken();
      if (result === 'expired') throw expired(record.expiresAt);
      if (result === 'used_up') throw usedUp();
      ctx.jobs.routingChanged();
      ctx.log.info({ runnerId, name: body.name, pool: record.poolName, project: record.project }, 'runner registered');
      const response: RegisterResponse = {
        runnerId,
        name: body.name,
        pool: record.poolName,
        project: record.project,
        token: token.token,
        heartbeatIntervalMs: ctx.timings.heartbeatIntervalMs,
      };
      return { status: 201, body: response };
    },
  },
];
