import path from 'node:path';
import type { JobSpec } from '@rbtk/protocol';
import { timeOrderedId } from '../src/auth/secrets.js';
import type { RunnerRow } from '../src/store/rows.js';
import type { SqliteJobStore } from '../src/store/sqlite/jobs.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { tempDir } from './helpers.js';

/** A shell job as the protocol's parser leaves it (defaults filled in). */
export const SHELL_SPEC = {
  pool: 'p',
  executor: { type: 'shell', command: ['true'], env: {} },
  requires: { labels: {} },
  timeout: '1h',
  retries: 0,
} as unknown as JobSpec;

/** A runner row as registration writes it (OFFLINE until its first hello); `fields` changes any of it. */
export function newRunnerRow(fields: Pick<RunnerRow, 'id' | 'poolId' | 'registeredAt'> & Partial<RunnerRow>): RunnerRow {
  return {
    name: fields.id,
    labels: {},
    airgapped: false,
    status: 'OFFLINE',
    draining: false,
    agentVersion: null,
    host: null,
    capabilities: null,
    registrationTokenId: null,
    lastHeartbeatAt: null,
    ...fields,
  };
}

export interface StoreWithPool {
  store: SqliteStore;
  /** The pool "p" of project "default". */
  poolId: number;
  /** A queued SHELL_SPEC job in the pool, through `jobs` (the store's own by default); its id. */
  submit(jobs?: SqliteJobStore): Promise<string>;
  close(): Promise<void>;
}

/** A SQLite store in a fresh temp directory with one project and one pool, for tests of the store's users. */
export function storeWithPool(): StoreWithPool {
  const dir = tempDir();
  const store = SqliteStore.open(path.join(dir.dir, 'c.db'));
  store.db.prepare("INSERT INTO projects (name, created_at) VALUES ('default', 0)").run();
  const poolId = Number(
    store.db
      .prepare(
        "INSERT INTO pools (project, name, type, status, tags, airgapped, created_at, updated_at) VALUES ('default', 'p', 'self-hosted', 'active', '{}', 0, 0, 0)",
      )
      .run().lastInsertRowid,
  );
  return {
    store,
    poolId,
    async submit(jobs = store.jobs) {
      const id = timeOrderedId();
      await jobs.submit({ id, project: 'default', poolId, poolName: 'p', spec: SHELL_SPEC, timeoutMs: 3_600_000, createdAt: Date.now() });
      return id;
    },
    async close() {
      await store.close();
      dir.cleanup();
    },
  };
}
