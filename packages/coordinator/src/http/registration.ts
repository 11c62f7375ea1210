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
import { verifySecret } from '../auth/secrets.js';
import type { CoordinatorContext } from '../context.js';
import type { RegistrationTokenRecord } from '../store/rows.js';
import { registerRunner } from '../register-runner.js';
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
      const registered = await registerRunner(ctx, {
        registrationTokenId: record.id,
        actor: `registration:${record.id}`,
        pool: { id: record.poolId, name: record.poolName, project: record.project },
        name: body.name,
        labels: body.labels,
        airgapped: body.airgapped,
        agentVersion: body.agentVersion ?? null,
        host: body.host ?? null,
      });
      if (registered.result === 'unknown') throw unknownToken();
      if (registered.result === 'expired') throw expired(record.expiresAt);
      if (registered.result === 'used_up') throw usedUp();
      const { runnerId, token } = registered;
      const response: RegisterResponse = {
        runnerId,
        name: body.name,
        pool: record.poolName,
        project: record.project,
        token,
        heartbeatIntervalMs: ctx.timings.heartbeatIntervalMs,
      };
      return { status: 201, body: response };
    },
  },
];
