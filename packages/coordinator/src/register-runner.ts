import { type HostFacts, type Labels, TokenKind } from '@rbtk/protocol';
import { mintToken, randomId } from './auth/secrets.js';
import type { CoordinatorContext } from './context.js';
import { registrationAudit, retryRegistration, type RetryOutcome } from './register-retry.js';
import type { RegisterResult } from './store/store.js';

export interface RegisterRunnerInput {
  /** null: the coordinator registers the runner itself (a hosted pool's member), no token consumed. */
  registrationTokenId: string | null;
  actor: string;
  pool: { id: number; name: string; project: string };
  name: string;
  labels: Labels;
  airgapped: boolean;
  agentVersion: string | null;
  host: HostFacts | null;
  /** The client's id for this registration; a repeat of it is a retry (register-retry.ts). */
  registrationId?: string | null;
}

export interface RegisterRunnerOutcome {
  /** registered: a new runner; retried, connected, stale: see register-retry.ts. */
  result: Exclude<RegisterResult, 'duplicate'> | RetryOutcome;
  runnerId: string;
  /** The runner's name as stored (a retry answers with the first request's). */
  name: string;
  /** The runner token's secret; meaningful for registered and retried only. */
  token: string;
}

/**
 * Creates a runner and its first runner token in one transaction (consuming
 * one use of the registration token, when there is one), with its audit row.
 * The secret is returned once, here; only its hash is stored.
 */
export async function registerRunner(ctx: CoordinatorContext, input: RegisterRunnerInput): Promise<RegisterRunnerOutcome> {
  const now = ctx.now();
  const token = mintToken(TokenKind.Runner);
  const key =
    input.registrationTokenId !== null && input.registrationId
      ? { registrationTokenId: input.registrationTokenId, registrationId: input.registrationId }
      : null;
  if (key) {
    const retried = await retryRegistration(ctx, { ...key, actor: input.actor, pool: input.pool, token, now });
    if (retried) return retried;
  }
  const runnerId = randomId(16);
  const result = await ctx.store.runners.register({
    registrationTokenId: input.registrationTokenId,
    registrationId: key?.registrationId ?? null,
    now,
    runner: {
      id: runnerId,
      poolId: input.pool.id,
      name: input.name,
      labels: input.labels,
      airgapped: input.airgapped,
      status: 'OFFLINE', // until its first hello
      draining: false,
      agentVersion: input.agentVersion,
      host: input.host,
      capabilities: null,
      registrationTokenId: input.registrationTokenId,
      registeredAt: now,
      lastHeartbeatAt: null,
    },
    token: { id: token.id, runnerId, hash: token.hash, state: 'current', createdAt: now },
    audit: registrationAudit(now, input.actor, input.pool, { id: runnerId, name: input.name, airgapped: input.airgapped }),
  });
  if (result === 'duplicate' && key) {
    // A request with the same registration id registered between our lookup and our insert.
    const retried = await retryRegistration(ctx, { ...key, actor: input.actor, pool: input.pool, token, now });
    if (retried) return retried;
    throw new Error(`registration ${key.registrationId}: its runner was created and removed while this request ran`);
  }
  if (result === 'duplicate') throw new Error('a registration without an id was reported as a duplicate');
  if (result === 'registered') {
    ctx.jobs.routingChanged();
    ctx.log.info({ runnerId, name: input.name, pool: input.pool.name, project: input.pool.project }, 'runner registered');
  }
  return { result, runnerId, name: input.name, token: token.token };
}
