import type { MintedToken } from './auth/secrets.js';
import { auditRow } from './audit.js';
import type { CoordinatorContext } from './context.js';
import type { RegisterRunnerOutcome } from './register-runner.js';
import type { NewAuditRow } from './store/rows.js';
import type { RetryRegistrationResult } from './store/store.js';

/**
 * How long after a registration its id may still be retried. rbtk-runner
 * retries for well under a minute; the window only bounds how long a
 * registration token that has expired since can still re-mint a runner token.
 */
export const REGISTRATION_RETRY_WINDOW_MS = 24 * 60 * 60 * 1000;

/** retried: same runner, fresh token. connected, stale: refused (409), nothing changed. */
export type RetryOutcome = Exclude<RetryRegistrationResult['result'], 'none'>;

/** The audit row of a registration (`retry`: the repeat of one whose answer was lost). */
export function registrationAudit(
  at: number,
  actor: string,
  pool: { name: string; project: string },
  runner: { id: string; name: string; airgapped: boolean },
  retry = false,
): NewAuditRow {
  return auditRow({
    at,
    actor,
    action: 'runner.register',
    resourceType: 'runner',
    resourceId: runner.id,
    project: pool.project,
    details: { name: runner.name, pool: pool.name, airgapped: runner.airgapped, ...(retry ? { retry: true } : {}) },
  });
}

export interface RetryInput {
  registrationTokenId: string;
  registrationId: string;
  actor: string;
  pool: { id: number; name: string; project: string };
  token: MintedToken;
  now: number;
}

/**
 * A register request whose registration id (with the same registration token,
 * in the same pool) already made a runner is the same registration, retried
 * because its answer was lost. The rule:
 * - the runner never said hello (last_heartbeat_at is NULL) and was registered
 *   less than REGISTRATION_RETRY_WINDOW_MS ago: answer as the first time did,
 *   same runner id, with a fresh runner token replacing the never-used first
 *   one. No use of the registration token is consumed, and its expiry and uses
 *   left are not checked: they were, when this registration was made.
 * - the runner has connected since, or the window has passed: refused, and
 *   nothing changes; that registration is complete.
 * Returns null when no runner has this registration id: a new registration.
 */
export async function retryRegistration(
  ctx: CoordinatorContext,
  input: RetryInput,
): Promise<RegisterRunnerOutcome | null> {
  const { now, token } = input;
  const found = await ctx.store.runners.retryRegistration({
    registrationTokenId: input.registrationTokenId,
    poolId: input.pool.id,
    registrationId: input.registrationId,
    registeredAfter: now - REGISTRATION_RETRY_WINDOW_MS,
    token: { id: token.id, hash: token.hash, state: 'current', createdAt: now },
    audit: (runner) => registrationAudit(now, input.actor, input.pool, runner, true),
  });
  if (found.result === 'none') return null;
  const { runner } = found;
  if (found.result === 'retried') {
    ctx.log.info({ runnerId: runner.id, name: runner.name, pool: input.pool.name, project: input.pool.project }, 'runner registration retried');
  }
  return { result: found.result, runnerId: runner.id, name: runner.name, token: token.token };
}
