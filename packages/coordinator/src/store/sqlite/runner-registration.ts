import type { RunnerRecord, RunnerTokenRow } from '../rows.js';
import type { RegisterInput, RegisterResult, RetryRegistrationInput, RetryRegistrationResult } from '../store.js';
import { insertAuditRow } from './audit.js';
import { type Db, isUniqueViolation, stmt, toJson } from './db.js';

/*
 * Registration's two transactions, apart from the runner's other writes
 * (runners.ts): a new registration, and the retry of one whose answer was lost.
 */

/** Consumes one use of the registration token (if any) and inserts the runner, its first token and the audit row. */
export function insertRegistration(db: Db, input: RegisterInput): RegisterResult {
  const registrationId = input.registrationId ?? null;
  try {
    return db.transaction((): RegisterResult => insertRegistrationSync(db, input, registrationId)).immediate();
  } catch (err) {
    // The unique index on (token, registration id): a request with the same id got there first.
    if (registrationId !== null && isUniqueViolation(err) && registrationExists(db, input.registrationTokenId, registrationId)) {
      return 'duplicate';
    }
    throw err;
  }
}

function insertRegistrationSync(db: Db, input: RegisterInput, registrationId: string | null): RegisterResult {
  const { runner: r, token, now } = input;
  // Re-checked here, under the write lock: two hosts racing for the last use get one each.
  // No token: the coordinator registers a hosted pool's member itself.
  if (input.registrationTokenId !== null) {
    const t = stmt(db, 'SELECT expires_at, uses_left FROM registration_tokens WHERE id = ?').get(input.registrationTokenId) as
      | { expires_at: number; uses_left: number | null }
      | undefined;
    if (!t) return 'unknown';
    if (t.expires_at <= now) return 'expired';
    if (t.uses_left !== null && t.uses_left <= 0) return 'used_up';
    if (t.uses_left !== null) {
      stmt(db, 'UPDATE registration_tokens SET uses_left = uses_left - 1 WHERE id = ?').run(input.registrationTokenId);
    }
  }
  stmt(
    db,
    `INSERT INTO runners (id, pool_id, name, labels, airgapped, status, draining, agent_version, host,
       capabilities, registration_token_id, registered_at, last_heartbeat_at, registration_id)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  ).run(
    r.id,
    r.poolId,
    r.name,
    JSON.stringify(r.labels),
    r.airgapped ? 1 : 0,
    r.status,
    r.draining ? 1 : 0,
    r.agentVersion,
    toJson(r.host),
    toJson(r.capabilities),
    r.registrationTokenId,
    r.registeredAt,
    r.lastHeartbeatAt,
    registrationId,
  );
  insertRunnerToken(db, { ...token, runnerId: r.id });
  insertAuditRow(db, input.audit);
  return 'registered';
}

function insertRunnerToken(db: Db, t: RunnerTokenRow): void {
  stmt(db, 'INSERT INTO runner_tokens (id, runner_id, hash, state, created_at) VALUES (?, ?, ?, ?, ?)').run(t.id, t.runnerId, t.hash, t.state, t.createdAt);
}

function registrationExists(db: Db, tokenId: string | null, registrationId: string): boolean {
  return stmt(db, 'SELECT 1 FROM runners WHERE registration_token_id = ? AND registration_id = ?').get(tokenId, registrationId) !== undefined;
}

/**
 * Finds the runner this registration id made with this token in this pool. If
 * it never said hello (last_heartbeat_at is NULL), the first token it was sent
 * was never used, and maybe never received: it is replaced by the fresh one
 * (only hashes are stored, so the old secret cannot be sent again).
 */
export function retryRegistration(
  db: Db,
  input: RetryRegistrationInput,
  get: (id: string) => RunnerRecord | null,
): RetryRegistrationResult {
  return db
    .transaction((): RetryRegistrationResult => {
      const id = stmt(db, 'SELECT id FROM runners WHERE registration_token_id = ? AND registration_id = ? AND pool_id = ?')
        .pluck()
        .get(input.registrationTokenId, input.registrationId, input.poolId) as string | undefined;
      const runner = id === undefined ? null : get(id);
      if (!runner) return { result: 'none' };
      if (runner.lastHeartbeatAt !== null) return { result: 'connected', runner };
      if (runner.registeredAt <= input.registeredAfter) return { result: 'stale', runner };
      const { token } = input;
      stmt(db, 'DELETE FROM runner_tokens WHERE runner_id = ?').run(runner.id);
      insertRunnerToken(db, { ...token, runnerId: runner.id });
      insertAuditRow(db, input.audit(runner));
      return { result: 'retried', runner };
    })
    .immediate();
}
