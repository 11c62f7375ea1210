import { type HostFacts, type Labels, TokenKind } from '@rbtk/protocol';
import { mintToken, randomId } from './auth/secrets.js';
import { auditRow } from './audit.js';
import type { CoordinatorContext } from './context.js';
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
}

/**
 * Creates a runner and its first runner token in one transaction (consuming
 * one use of the registration token, when there is one), with its audit row.
 * The secret is returned once, here; only its hash is stored.
 */
export async function registerRunner(
  ctx: CoordinatorContext,
  input: RegisterRunnerInput,
): Promise<{ result: RegisterResult; runnerId: string; token: string }> {
  const now = ctx.now();
  const runnerId = randomId(16);
  const token = mintToken(TokenKind.Runner);
  const result = await ctx.store.runners.register({
    registrationTokenId: input.registrationTokenId,
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
    audit: auditRow({
      at: now,
      actor: input.actor,
      action: 'runner.register',
      resourceType: 'runner',
      resourceId: runnerId,
      project: input.pool.project,
      details: { name: input.name, pool: input.pool.name, airgapped: input.airgapped },
    }),
  });
  if (result === 'registered') {
    ctx.jobs.routingChanged();
    ctx.log.info({ runnerId, name: input.name, pool: input.pool.name, project: input.pool.project }, 'runner registered');
  }
  return { result, runnerId, token: token.token };
}
