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
  {
    version: 2,
    name: 'jobs, job events, job logs',
    sql: `
      -- seq orders each pool's FIFO: a requeued job keeps its place (created order).
      -- runner_id has no foreign key: runners are deleted (revoke, reap) while
      -- their jobs' history stays.
      CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        project TEXT NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
        pool_id INTEGER NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
        state TEXT NOT NULL CHECK (state IN ('queued', 'assigned', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
        spec TEXT NOT NULL,
        timeout_ms INTEGER NOT NULL,
        retries INTEGER NOT NULL,
        idempotency_key TEXT,
        attempt INTEGER NOT NULL DEFAULT 0,
        -- attempts that ended in a retry-consuming failure (runner lost/revoked, executor failed)
        failures INTEGER NOT NULL DEFAULT 0,
        runner_id TEXT,
        exit_code INTEGER,
        reason TEXT,
        -- runners that rejected this job: never offered it again
        excluded TEXT NOT NULL DEFAULT '[]',
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        -- bytes of the current attempt's log
        log_bytes INTEGER NOT NULL DEFAULT 0,
        -- state changes so far; watchers use it to drop events they have already seen
        version INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        assigned_at INTEGER,
        started_at INTEGER,
        finished_at INTEGER
      );
      CREATE UNIQUE INDEX jobs_idempotency ON jobs (project, idempotency_key) WHERE idempotency_key IS NOT NULL;
      CREATE INDEX jobs_queue ON jobs (pool_id, seq) WHERE state = 'queued';
      CREATE INDEX jobs_in_flight ON jobs (runner_id) WHERE state IN ('assigned', 'running');
      CREATE INDEX jobs_running ON jobs (started_at) WHERE state = 'running';
      CREATE INDEX jobs_project ON jobs (project, seq);
      -- No AUTOINCREMENT: events are never deleted on their own, and it would cost a write per event.
      CREATE TABLE job_events (
        id INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        state TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        runner_id TEXT,
        reason TEXT,
        exit_code INTEGER
      );
      CREATE INDEX job_events_job ON job_events (job_id, id);
      -- Each attempt keeps its own log; the job's visible log is its current attempt's.
      CREATE TABLE job_logs (
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        byte_offset INTEGER NOT NULL,
        size INTEGER NOT NULL,
        stream TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr')),
        data TEXT NOT NULL,
        PRIMARY KEY (job_id, attempt, byte_offset)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 3,
    name: 'pool job admission and container network',
    sql: `
      ALTER TABLE pools ADD COLUMN allow_non_airgapped_jobs INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE pools ADD COLUMN docker_network TEXT;
    `,
  },
  {
    version: 4,
    name: 'indexes for pool stats',
    sql: `
      -- Jobs per state of a pool (stats, /metrics) from the index alone; pool deletes find their jobs.
      CREATE INDEX jobs_pool_state ON jobs (pool_id, state);
      -- Jobs finished in a recent window (throughput, latency percentiles).
      CREATE INDEX jobs_pool_finished ON jobs (pool_id, finished_at) WHERE finished_at IS NOT NULL;
    `,
  },
  {
    version: 5,
    name: "runners' own drain",
    sql: `
      -- Why the runner drains itself (rbtk-runner drain, stopping, a pending upgrade); NULL: it does not.
      -- Set by its hello and drain frames; runners.draining stays the operator's drain.
      ALTER TABLE runners ADD COLUMN self_drain TEXT;
    `,
  },
  {
    version: 6,
    name: 'hosted pools and their members',
    sql: `
      -- A hosted pool's spec (HostedPoolSpec JSON); NULL for self-hosted pools.
      ALTER TABLE pools ADD COLUMN hosted_spec TEXT;
      -- Members the coordinator provisioned. runner_id has no foreign key: a member outlives
      -- its runner while it is torn down (revoke first, then the process or container).
      CREATE TABLE pool_members (
        id TEXT PRIMARY KEY,
        pool_id INTEGER NOT NULL REFERENCES pools(id),
        runner_id TEXT,
        state TEXT NOT NULL CHECK (state IN ('warming', 'ready', 'claimed', 'errored')),
        provider TEXT NOT NULL,
        -- what the provider needs to find it again (pid, container id): JSON
        handle TEXT,
        spec_hash TEXT NOT NULL,
        job_id TEXT,
        error TEXT,
        created_at INTEGER NOT NULL,
        state_changed_at INTEGER NOT NULL
      );
      CREATE INDEX pool_members_pool ON pool_members (pool_id, state);
      CREATE UNIQUE INDEX pool_members_runner ON pool_members (runner_id) WHERE runner_id IS NOT NULL;
    `,
  },
  {
    version: 7,
    name: 'stopped hosted members; warm hits and misses kept',
    sql: `
      -- SQLite cannot change a CHECK: the table is rebuilt with the stopped state (stopped mode).
      CREATE TABLE pool_members_v7 (
        id TEXT PRIMARY KEY,
        pool_id INTEGER NOT NULL REFERENCES pools(id),
        runner_id TEXT,
        state TEXT NOT NULL CHECK (state IN ('warming', 'ready', 'stopped', 'claimed', 'errored')),
        provider TEXT NOT NULL,
        handle TEXT,
        spec_hash TEXT NOT NULL,
        job_id TEXT,
        error TEXT,
        created_at INTEGER NOT NULL,
        state_changed_at INTEGER NOT NULL
      );
      INSERT INTO pool_members_v7 SELECT id, pool_id, runner_id, state, provider, handle, spec_hash, job_id, error, created_at, state_changed_at FROM pool_members;
      DROP TABLE pool_members;
      ALTER TABLE pool_members_v7 RENAME TO pool_members;
      CREATE INDEX pool_members_pool ON pool_members (pool_id, state);
      CREATE UNIQUE INDEX pool_members_runner ON pool_members (runner_id) WHERE runner_id IS NOT NULL;
      -- Jobs that found a warm member at submit, and ones that waited: rbtk pool show across restarts.
      ALTER TABLE pools ADD COLUMN warm_hits INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE pools ADD COLUMN warm_misses INTEGER NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 8,
    name: 'hosted autoscale state kept across restarts',
    sql: `
      -- What autoscale needs after a restart: its target, since when it has wanted less
      -- (it lowers after 4 h of that), and the concurrent claims of the last 30 min.
      -- One row per hosted pool, rewritten by a reconcile pass when it changed.
      CREATE TABLE pool_autoscale (
        pool_id INTEGER PRIMARY KEY REFERENCES pools(id) ON DELETE CASCADE,
        -- NULL while the pool does not autoscale (its samples are still kept)
        target INTEGER,
        below_since INTEGER,
        highest_below INTEGER NOT NULL DEFAULT 0,
        -- JSON [[at, claimed], ...], oldest first, claimed strictly decreasing (a few entries)
        samples TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 9,
    name: 'job events keyed by the job seq',
    sql: `
      -- Events were indexed by job id (text): every commit of finishing jobs dirtied about eight
      -- pages of that index, one per job still around the queue's head (measured, WAL frames per
      -- commit). Keyed by the job's seq (an integer, its rowid) an entry is a third the size and
      -- the same jobs share two or three pages; the foreign key looks the job up by rowid too.
      CREATE TABLE job_events_v9 (
        id INTEGER PRIMARY KEY,
        job_seq INTEGER NOT NULL REFERENCES jobs(seq) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        state TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        runner_id TEXT,
        reason TEXT,
        exit_code INTEGER
      );
      INSERT INTO job_events_v9 (id, job_seq, at, state, attempt, runner_id, reason, exit_code)
        SELECT e.id, j.seq, e.at, e.state, e.attempt, e.runner_id, e.reason, e.exit_code
        FROM job_events e JOIN jobs j ON j.id = e.job_id;
      DROP TABLE job_events;
      ALTER TABLE job_events_v9 RENAME TO job_events;
      -- The rowid (id) is part of every entry: a job's events come out in order from the index alone.
      CREATE INDEX job_events_job ON job_events (job_seq);
    `,
  },
  {
    version: 10,
    name: 'API token expiry, revocation and last use',
    sql: `
      -- NULL: valid until revoked. Tokens created before this migration never expire.
      ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
      -- A revoked token's row stays (a tombstone), so presenting it answers token_revoked.
      ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
      -- Written at most once a minute per token, not on every request.
      ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
    `,
  },
  {
    version: 11,
    name: 'registration ids: a retried registration finds its runner',
    sql: `
      -- The client's id for one registration, sent again on each retry (NULL: an older agent,
      -- or a hosted member). One runner per id and registration token, even for two requests
      -- in flight at once: the second one's insert fails here and is answered as the retry.
      ALTER TABLE runners ADD COLUMN registration_id TEXT;
      CREATE UNIQUE INDEX runners_registration ON runners (registration_token_id, registration_id)
        WHERE registration_id IS NOT NULL;
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
  const versions = migrations.map((m) => m.version);
  // Two branches that each added "the next" migration: caught here, not as a half-migrated file.
  if (new Set(versions).size !== versions.length) throw new Error(`two migrations share a version: ${versions.join(', ')}`);
  const known = Math.max(0, ...versions);
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
