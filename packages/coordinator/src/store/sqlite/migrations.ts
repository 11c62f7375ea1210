import type { Db } from './db.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/*
 * Versioned schema changes, applied in order, each in its own transaction and
 * recorded in schema_migrations. Never edit a released migration: add one.
 * Times are epoch milliseconds; JSON columns hold objects this code wrote.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'projects, tokens, pools, runners, audit',
    sql: `
      CREATE TABLE projects (
        name TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'submitter')),
        project TEXT REFERENCES projects(name) ON DELETE CASCADE,
        name TEXT,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE pools (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project TEXT NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('self-hosted', 'hosted')),
        status TEXT NOT NULL CHECK (status IN ('active', 'paused', 'draining')),
        tags TEXT NOT NULL,
        airgapped INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (project, name)
      );
      CREATE TABLE registration_tokens (
        id TEXT PRIMARY KEY,
        pool_id INTEGER NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
        hash TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        uses_left INTEGER CHECK (uses_left IS NULL OR uses_left >= 0),
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX registration_tokens_pool ON registration_tokens (pool_id);
      CREATE TABLE runners (
        id TEXT PRIMARY KEY,
        pool_id INTEGER NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        airgapped INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('ONLINE', 'DRAINING', 'OFFLINE')),
        draining INTEGER NOT NULL DEFAULT 0,
        agent_version TEXT,
        host TEXT,
        capabilities TEXT,
        registration_token_id TEXT,
        registered_at INTEGER NOT NULL,
        last_heartbeat_at INTEGER
      );
      CREATE INDEX runners_pool ON runners (pool_id);
      CREATE INDEX runners_liveness ON runners (status, last_heartbeat_at);
      -- Revoked tokens stay as tombstones (runner_id NULL) so they answer
      -- token_revoked rather than token_unknown; other deletes remove tokens first.
      CREATE TABLE runner_tokens (
        id TEXT PRIMARY KEY,
        runner_id TEXT REFERENCES runners(id) ON DELETE SET NULL,
        hash TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('current', 'pending', 'superseded', 'revoked')),
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
      );
      CREATE INDEX runner_tokens_runner ON runner_tokens (runner_id, state, created_at);
      CREATE UNIQUE INDEX runner_tokens_one_current ON runner_tokens (runner_id) WHERE state = 'current';
      CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        project TEXT,
        details TEXT NOT NULL
      );
      CREATE INDEX audit_project ON audit (project, resource_type, id);
    `,
  },
];

/** Applies the migrations this database lacks; returns the versions applied. Idempotent. */
export function migrate(db: Db, migrations: readonly Migration[] = MIGRATIONS): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  )`);
  const applied = new Set(
    (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version),
  );
  const newest = Math.max(0, ...applied);
  const known = Math.max(0, ...migrations.map((m) => m.version));
  if (newest > known) {
    // A newer coordinator wrote this file; running old code on it could corrupt it.
    throw new Error(`database schema version ${newest} is newer than this coordinator knows (${known}): upgrade rbtk-coordinator`);
  }
  const done: number[] = [];
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
    }).immediate();
    done.push(m.version);
  }
  return done;
}
