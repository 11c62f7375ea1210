import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { auditRow } from '../src/audit.js';
import { mintToken } from '../src/auth/secrets.js';
import type { CoordinatorContext } from '../src/context.js';
import { authenticateRunnerToken, KEEP_SUPERSEDED_TOKENS } from '../src/rotation.js';
import type { RunnerRow } from '../src/store/rows.js';
import { openDatabase } from '../src/store/sqlite/db.js';
import { MIGRATIONS, migrate } from '../src/store/sqlite/migrations.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { JobService } from '../src/jobs/job-service.js';
import { CoordinatorMetrics } from '../src/metrics/coordinator-metrics.js';
import { SessionRegistry } from '../src/ws/sessions.js';
import { tempDir, testLogger } from './helpers.js';
import { newRunnerRow } from './store-helpers.js';

const T0 = Date.UTC(2030, 0, 1);
const audit = (action: 'runner.register' | 'pool.create' | 'token.mint' | 'pool.delete', id: string) =>
  auditRow({ at: T0, actor: 'test', action, resourceType: action.startsWith('runner') ? 'runner' : 'pool', resourceId: id, project: 'default' });

let dir: { dir: string; cleanup: () => void };
let store: SqliteStore;
let poolId: number;

beforeEach(async () => {
  dir = tempDir();
  store = SqliteStore.open(path.join(dir.dir, 'c.db'));
  await store.projects.create({ name: 'default', createdAt: T0 });
  const pool = await store.pools.create(
    { project: 'default', name: 'gpu', type: 'self-hosted', status: 'active', tags: {}, airgapped: false, allowNonAirgappedJobs: false, dockerNetwork: null, createdAt: T0, updatedAt: T0 },
    audit('pool.create', 'gpu'),
  );
  poolId = pool!.id;
});

afterEach(async () => {
  await store.close();
  dir.cleanup();
});

function runnerRow(id: string, regId: string | null = null): RunnerRow {
  return newRunnerRow({ id, poolId, name: `host-${id}`, registrationTokenId: regId, registeredAt: T0 });
}

async function mintReg(id: string, usesLeft: number | null, expiresAt = T0 + 3_600_000) {
  await store.registrationTokens.insert(
    { id, poolId, hash: 'h', expiresAt, usesLeft, createdBy: 'test', createdAt: T0 },
    audit('token.mint', id),
  );
}

async function register(regId: string, runnerId: string, tokenId = `tok${runnerId}`, now = T0) {
  return store.runners.register({
    registrationTokenId: regId,
    now,
    runner: runnerRow(runnerId, regId),
    token: { id: tokenId, runnerId, hash: 'x', state: 'current', createdAt: now },
    audit: audit('runner.register', runnerId),
  });
}

describe('migrations', () => {
  it('are recorded and idempotent across reopen', async () => {
    const file = path.join(dir.dir, 'c.db');
    await store.close();
    store = SqliteStore.open(file); // second open: nothing to apply
    expect(migrate(store.db)).toEqual([]);
    const rows = store.db.prepare('SELECT version FROM schema_migrations ORDER BY version').all();
    expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version })));
    expect(await store.projects.list()).toHaveLength(1); // data survived
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(store.db.pragma('synchronous', { simple: true })).toBe(2); // FULL
  });

  it('version 9 keys job events by the job seq and keeps every event of every job', () => {
    const file = path.join(dir.dir, 'v8.db');
    const db = openDatabase(file);
    try {
      migrate(db, MIGRATIONS.filter((m) => m.version <= 8));
      db.prepare("INSERT INTO projects (name, created_at) VALUES ('p', 0)").run();
      const pool = db.prepare("INSERT INTO pools (project, name, type, status, tags, airgapped, created_at, updated_at) VALUES ('p', 'q', 'self-hosted', 'active', '{}', 0, 0, 0)").run();
      const insertJob = db.prepare(
        "INSERT INTO jobs (id, project, pool_id, state, spec, timeout_ms, retries, created_at) VALUES (?, 'p', ?, 'succeeded', '{}', 1, 0, 0)",
      );
      const insertEvent = db.prepare('INSERT INTO job_events (job_id, at, state, attempt, runner_id, reason, exit_code) VALUES (?, ?, ?, ?, ?, ?, ?)');
      for (const id of ['b', 'a']) insertJob.run(id, pool.lastInsertRowid);
      insertEvent.run('a', 1, 'queued', 0, null, null, null);
      insertEvent.run('b', 2, 'queued', 0, null, null, null);
      insertEvent.run('a', 3, 'succeeded', 1, 'r1', null, 0);

      expect(migrate(db, MIGRATIONS.filter((m) => m.version <= 9))).toEqual([9]);
      const events = db
        .prepare('SELECT j.id, e.at, e.state, e.attempt, e.runner_id, e.exit_code FROM job_events e JOIN jobs j ON j.seq = e.job_seq ORDER BY e.id')
        .all();
      expect(events).toEqual([
        { id: 'a', at: 1, state: 'queued', attempt: 0, runner_id: null, exit_code: null },
        { id: 'b', at: 2, state: 'queued', attempt: 0, runner_id: null, exit_code: null },
        { id: 'a', at: 3, state: 'succeeded', attempt: 1, runner_id: 'r1', exit_code: 0 },
      ]);
      // Deleting a job still takes its events with it.
      db.prepare("DELETE FROM jobs WHERE id = 'a'").run();
      expect(db.prepare('SELECT COUNT(*) AS n FROM job_events').get()).toEqual({ n: 1 });
      expect(db.pragma('foreign_key_check')).toEqual([]);
    } finally {
      db.close();
    }
  });

  it('version 10 keeps API tokens made before it, never expiring, not revoked, never used', async () => {
    const file = path.join(dir.dir, 'v9.db');
    const db = openDatabase(file);
    try {
      migrate(db, MIGRATIONS.filter((m) => m.version <= 9));
      db.prepare("INSERT INTO api_tokens (id, hash, role, project, name, created_at) VALUES ('old', 'h', 'admin', NULL, 'first', 5)").run();
      expect(migrate(db, MIGRATIONS.filter((m) => m.version <= 10))).toEqual([10]);
      expect(db.prepare('SELECT expires_at, revoked_at, last_used_at FROM api_tokens').get()).toEqual({
        expires_at: null,
        revoked_at: null,
        last_used_at: null,
      });
    } finally {
      db.close();
    }
  });

  it('version 11 keeps runners registered before it, without a registration id, and allows one runner per id and token', () => {
    const file = path.join(dir.dir, 'v10.db');
    const db = openDatabase(file);
    try {
      migrate(db, MIGRATIONS.filter((m) => m.version <= 10));
      db.prepare("INSERT INTO projects (name, created_at) VALUES ('p', 0)").run();
      const pool = db.prepare("INSERT INTO pools (project, name, type, status, tags, airgapped, created_at, updated_at) VALUES ('p', 'q', 'self-hosted', 'active', '{}', 0, 0, 0)").run();
      const insertRunner = db.prepare(
        "INSERT INTO runners (id, pool_id, name, labels, airgapped, status, registration_token_id, registered_at) VALUES (?, ?, 'h', '{}', 0, 'OFFLINE', 't', 0)",
      );
      insertRunner.run('old', pool.lastInsertRowid);
      expect(migrate(db, MIGRATIONS.filter((m) => m.version <= 11))).toEqual([11]);
      expect(db.prepare('SELECT id, registration_id FROM runners').all()).toEqual([{ id: 'old', registration_id: null }]);
      // Many runners of one token without an id (older agents); one per id.
      insertRunner.run('old2', pool.lastInsertRowid);
      const withId = db.prepare("UPDATE runners SET registration_id = 'same' WHERE id = ?");
      withId.run('old');
      expect(() => withId.run('old2')).toThrow(/UNIQUE/);
    } finally {
      db.close();
    }
  });

  it('refuses a database written by a newer schema', async () => {
    store.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, ?, 0)').run('future');
    expect(() => migrate(store.db)).toThrow(/schema version 999 is newer/);
  });
});

describe('registration', () => {
  it('counts uses and refuses when used up or expired', async () => {
    await mintReg('reg2', 2);
    expect(await register('reg2', 'r1')).toBe('registered');
    expect((await store.registrationTokens.get('reg2'))!.usesLeft).toBe(1);
    expect(await register('reg2', 'r2')).toBe('registered');
    expect(await register('reg2', 'r3')).toBe('used_up');
    expect((await store.registrationTokens.get('reg2'))!.usesLeft).toBe(0);
    expect(await store.runners.get('r3')).toBeNull();

    await mintReg('regx', 5, T0 + 1000);
    expect(await register('regx', 'r4', 'tok4', T0 + 1000)).toBe('expired');
    expect((await store.registrationTokens.get('regx'))!.usesLeft).toBe(5);
    expect(await register('nope', 'r5')).toBe('unknown');

    await mintReg('unlimited', null);
    for (let i = 0; i < 3; i++) expect(await register('unlimited', `u${i}`)).toBe('registered');
    expect((await store.registrationTokens.get('unlimited'))!.usesLeft).toBeNull();
    expect((await store.pools.get('default', 'gpu'))!.counts).toEqual({ online: 0, draining: 0, offline: 5 });
  });
});

describe('runner tokens', () => {
  beforeEach(async () => {
    await mintReg('reg', null);
    await register('reg', 'r1', 'A');
  });

  const states = async () =>
    Object.fromEntries(
      (store.db.prepare('SELECT id, state FROM runner_tokens ORDER BY id').all() as { id: string; state: string }[]).map((r) => [
        r.id,
        r.state,
      ]),
    );

  it('keeps at most 3 pendings and promotes one, superseding the current', async () => {
    for (const [i, id] of ['B', 'C', 'D', 'E'].entries()) {
      await store.runnerTokens.addPending({ id, runnerId: 'r1', hash: 'h', state: 'pending', createdAt: T0 + i + 1 }, 3);
    }
    expect(await states()).toEqual({ A: 'current', C: 'pending', D: 'pending', E: 'pending' });
    expect(await store.runnerTokens.promote('r1', 'A', KEEP_SUPERSEDED_TOKENS)).toBe(false); // not pending
    expect(await store.runnerTokens.promote('r1', 'D', KEEP_SUPERSEDED_TOKENS)).toBe(true);
    expect(await states()).toEqual({ A: 'superseded', D: 'current' });
    expect((await store.runnerTokens.current('r1'))!.id).toBe('D');
    expect(await store.runnerTokens.promote('r1', 'D', KEEP_SUPERSEDED_TOKENS)).toBe(false); // already current
  });

  it('keeps only the latest 20 superseded tokens', async () => {
    for (let i = 1; i <= 25; i++) {
      await store.runnerTokens.addPending({ id: `P${i}`, runnerId: 'r1', hash: 'h', state: 'pending', createdAt: T0 + i }, 3);
      expect(await store.runnerTokens.promote('r1', `P${i}`, KEEP_SUPERSEDED_TOKENS)).toBe(true);
    }
    const s = await states();
    expect(Object.values(s).filter((v) => v === 'superseded')).toHaveLength(20);
    expect(s.P25).toBe('current');
    expect(s.P24).toBe('superseded');
    expect(s.A).toBeUndefined(); // the oldest were dropped
  });

  it('revokes the runner when a superseded token is presented again', async () => {
    // Real tokens this time, so authentication can verify them.
    const first = mintToken('run');
    const second = mintToken('run');
    await register('reg', 'r2', first.id);
    store.db.prepare('UPDATE runner_tokens SET hash = ? WHERE id = ?').run(first.hash, first.id);
    await store.runnerTokens.addPending({ id: second.id, runnerId: 'r2', hash: second.hash, state: 'pending', createdAt: T0 + 1 }, 3);
    const ctx: CoordinatorContext = {
      store,
      sessions: new SessionRegistry(),
      log: testLogger(),
      timings: { heartbeatIntervalMs: 1000, offlineAfterMs: 1000, reapAfterMs: 10_000, tokenRotationMs: 0, acceptTimeoutMs: 10_000 },
      jobs: new JobService({ store, log: testLogger(), now: () => T0 + 10, acceptTimeoutMs: 10_000 }),
      metrics: new CoordinatorMetrics({ store, sessions: new SessionRegistry(), now: () => T0 + 10 }),
      now: () => T0 + 10,
    };
    // Connecting with the pending token promotes it.
    const viaPending = await authenticateRunnerToken(ctx, second.token);
    expect(viaPending.ok).toBe(true);
    expect((await store.runnerTokens.get(first.id))!.state).toBe('superseded');

    const replay = await authenticateRunnerToken(ctx, first.token);
    expect(replay).toMatchObject({ ok: false, code: 'token_revoked' });
    expect(await store.runners.get('r2')).toBeNull();
    const rows = await store.audit.list({ project: 'default', resourceType: 'runner', limit: 10 });
    expect(rows.at(-1)).toMatchObject({
      action: 'runner.revoke',
      actor: 'system',
      resourceId: 'r2',
      details: { reason: 'superseded token reused', tokenId: first.id },
    });
    // Even the legitimate current token is dead now.
    expect(await authenticateRunnerToken(ctx, second.token)).toMatchObject({ ok: false, code: 'token_revoked' });
    // A made-up secret for a known id is just unknown.
    expect(await authenticateRunnerToken(ctx, `rbtk_run_${second.id}_${'x'.repeat(43)}`)).toMatchObject({
      ok: false,
      code: 'token_unknown',
    });
  });
});

describe('revoke and delete', () => {
  beforeEach(async () => {
    await mintReg('reg', null);
    await register('reg', 'r1', 'A');
    await register('reg', 'r2', 'B');
  });

  it('revoke deletes the runner, tombstones its tokens and writes the audit row in one go', async () => {
    const revoked = await store.runners.revoke('r1', T0 + 5, (r) =>
      auditRow({ at: T0 + 5, actor: 'admin:x', action: 'runner.revoke', resourceType: 'runner', resourceId: r.id, project: r.project, details: { reason: 'test' } }),
    );
    expect(revoked).toMatchObject({ id: 'r1', poolName: 'gpu', project: 'default' });
    expect(await store.runners.get('r1')).toBeNull();
    expect(await store.runnerTokens.get('A')).toMatchObject({ state: 'revoked', runnerId: null });
    expect(await store.runners.revoke('r1', T0 + 6, () => { throw new Error('not called'); })).toBeNull();
    const last = (await store.audit.list({ project: 'default', limit: 1 }))[0];
    expect(last).toMatchObject({ action: 'runner.revoke', resourceId: 'r1', details: { reason: 'test' } });
    expect(await store.runnerTokens.pruneRevoked(T0 + 5)).toBe(1);
    expect(await store.runnerTokens.get('A')).toBeNull();
  });

  it('pool delete is refused with an online runner, else removes runners, tokens and registration tokens', async () => {
    await store.runners.recordHeartbeat('r1', T0 + 1);
    expect(await store.pools.delete('default', 'gpu', audit('pool.delete', 'gpu'))).toEqual({ kind: 'busy', onlineRunners: 1, jobsInFlight: 0 });
    await store.runners.markOffline(T0 + 1);
    const result = await store.pools.delete('default', 'gpu', audit('pool.delete', 'gpu'));
    expect(result).toEqual({ kind: 'deleted', runnerIds: ['r1', 'r2'] });
    for (const table of ['pools', 'runners', 'runner_tokens', 'registration_tokens']) {
      expect(store.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get()).toEqual({ n: 0 });
    }
    expect(await store.pools.delete('default', 'gpu', audit('pool.delete', 'gpu'))).toEqual({ kind: 'not_found' });
  });
});

describe('api tokens', () => {
  const token = (id: string, over: Partial<{ project: string | null; expiresAt: number | null; role: 'admin' | 'submitter' }> = {}) => ({
    id,
    hash: 'h',
    role: over.role ?? ('admin' as const),
    project: over.project === undefined ? null : over.project,
    name: null,
    createdAt: T0,
    expiresAt: over.expiresAt ?? null,
    lastUsedAt: null,
    revokedAt: null,
  });
  const revokeAudit = () => auditRow({ at: T0, actor: 'test', action: 'token.revoke', resourceType: 'token', resourceId: 'x', project: 'default' });

  it('refuse to revoke the last instance admin token still valid; an expired one does not count', async () => {
    await store.apiTokens.insert(token('live'));
    await store.apiTokens.insert(token('lapsed', { expiresAt: T0 + 1000 }));
    await store.apiTokens.insert(token('proj', { project: 'default' }));
    expect((await store.apiTokens.revoke('live', null, T0 + 2000, revokeAudit)).kind).toBe('last_instance_admin');
    // Before `lapsed` expires it is a way in: `live` may go.
    expect((await store.apiTokens.revoke('live', null, T0, revokeAudit)).kind).toBe('revoked');
    expect(await store.apiTokens.hasInstanceAdmin(T0)).toBe(true);
    expect(await store.apiTokens.hasInstanceAdmin(T0 + 1000)).toBe(false);
    // A project admin token is no instance admin, and revoking it is always allowed.
    expect((await store.apiTokens.revoke('proj', 'default', T0 + 2000, revokeAudit)).kind).toBe('revoked');
    expect((await store.apiTokens.revoke('proj', 'default', T0 + 2000, revokeAudit)).kind).toBe('already_revoked');
  });

  it('revoke only within the project given; list leaves revoked ones out and instance ones to the instance admin', async () => {
    await store.projects.create({ name: 'other', createdAt: T0 });
    await store.apiTokens.insert(token('inst'));
    await store.apiTokens.insert(token('a', { project: 'default', role: 'submitter' }));
    await store.apiTokens.insert(token('b', { project: 'other' }));
    expect((await store.apiTokens.revoke('b', 'default', T0, revokeAudit)).kind).toBe('not_found');
    expect((await store.apiTokens.revoke('nope', null, T0, revokeAudit)).kind).toBe('not_found');
    const ids = async (project: string, instanceWide: boolean) => (await store.apiTokens.list({ project, instanceWide })).map((t) => t.id);
    expect(await ids('default', true)).toEqual(['a', 'inst']);
    expect(await ids('default', false)).toEqual(['a']);
    const before = (await store.audit.list({ project: 'default', limit: 100 })).length;
    expect((await store.apiTokens.revoke('a', null, T0 + 5, revokeAudit)).kind).toBe('revoked');
    expect((await store.audit.list({ project: 'default', limit: 100 })).length).toBe(before + 1);
    expect(await ids('default', true)).toEqual(['inst']);
    expect(await store.apiTokens.get('a')).toMatchObject({ revokedAt: T0 + 5 });
  });
});
