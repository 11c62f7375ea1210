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
import { REGISTRATION_RETRY_WINDOW_MS } from '../register-retry.js';
import { registerRunner } from '../register-runner.js';
import { readJson } from './body.js';
import type { Route } from './router.js';

const unknownToken = () => new RbtkError(ErrorCode.TokenUnknown, 'registration token is unknown');
const expired = (at: number) =>
  new RbtkError(ErrorCode.TokenExpired, `registration token expired at ${new Date(at).toISOString()}`);
const usedUp = () => new RbtkError(ErrorCode.TokenUsedUp, 'registration token has no uses left');

/**
 * Checks the bearer registration token is one we minted. Its expiry and uses
 * left are checked by the store, in the registration's transaction: a retry
 * of a registration already made is answered even once they ran out.
 */
async function checkRegistrationToken(ctx: CoordinatorContext, raw: string | null): Promise<RegistrationTokenRecord> {
  if (!raw) {
    throw new RbtkError(ErrorCode.Unauthorized, 'missing registration token: send "Authorization: Bearer rbtk_reg_..."');
  }
  const parsed = parseToken(raw);
  if (!parsed || parsed.kind !== TokenKind.Registration) throw unknownToken();
  const record = await ctx.store.registrationTokens.get(parsed.id);
  if (!record || !verifySecret(parsed.secret, record.hash)) throw unknownToken();
  return record;
}

/** A registration id repeated after its registration completed: nothing is changed, say what to do instead. */
function completed(registrationId: string, runnerId: string, result: 'connected' | 'stale'): RbtkError {
  const why =
    result === 'connected'
      ? `runner ${runnerId} has connected with it`
      : `runner ${runnerId} was registered with it over ${REGISTRATION_RETRY_WINDOW_MS / 3_600_000} h ago`;
  return new RbtkError(
    ErrorCode.Conflict,
    `registration ${registrationId} already completed: ${why}; run rbtk-runner register again for a new registration (with --force over an existing runner.yaml, and a new token if this one has no uses left)`,
    409,
    { runnerId },
  );
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
        registrationId: body.registrationId ?? null,
      });
      const { result, runnerId, token } = registered;
      if (result === 'unknown') throw unknownToken();
      if (result === 'expired') throw expired(record.expiresAt);
      if (result === 'used_up') throw usedUp();
      if (result === 'connected' || result === 'stale') throw completed(body.registrationId ?? '', runnerId, result);
      // A retry answers as the first request would have: same runner, its fresh token.
      const response: RegisterResponse = {
        runnerId,
        name: registered.name,
        pool: record.poolName,
        project: record.project,
        token,
        heartbeatIntervalMs: ctx.timings.heartbeatIntervalMs,
      };
      return { status: 201, body: response };
    },
  },
];
