import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Store } from '../store.js';
import { SqliteAuditStore } from './audit.js';
import { SqliteHostedStore } from './hosted.js';
import { SqliteJobStore } from './jobs.js';
import { type Db, openDatabase } from './db.js';
import { migrate } from './migrations.js';
import { GroupCommit } from './group-commit.js';
import { WalSync } from './wal-sync.js';
import { SqlitePoolStore, SqliteRegistrationTokenStore } from './pools.js';
import { SqliteApiTokenStore } from './api-tokens.js';
import { SqliteProjectStore } from './projects.js';
import { SqliteRunnerTokenStore } from './runner-tokens.js';
import { SqliteRunnerStore } from './runners.js';
import { SqliteStatsStore } from './stats.js';

/** How long heartbeats, hellos and token rotations wait to share a commit: well inside any timeout they meet. */
const SESSION_WRITES_COLLECT_MS = 5;

/** The embedded store: one SQLite file, migrated on open. */
export class SqliteStore implements Store {
  readonly projects: SqliteProjectStore;
  readonly apiTokens: SqliteApiTokenStore;
  readonly pools: SqlitePoolStore;
  readonly registrationTokens: SqliteRegistrationTokenStore;
  readonly runners: SqliteRunnerStore;
  readonly runnerTokens: SqliteRunnerTokenStore;
  readonly audit: SqliteAuditStore;
  readonly jobs: SqliteJobStore;
  readonly stats: SqliteStatsStore;
  readonly hosted: SqliteHostedStore;
  private closed = false;

  private constructor(readonly db: Db) {
    this.projects = new SqliteProjectStore(db);
    // Heartbeats, hellos and token rotation: one transaction for all of them every few ms (durable where
    // rotation needs it). At 10,000 runners they arrive ~1 per turn: a commit per turn was most of the CPU.
    // API tokens' last-used stamps ride along.
    const sessionWrites = new GroupCommit(db, { fsync: true, collectMs: SESSION_WRITES_COLLECT_MS });
    this.apiTokens = new SqliteApiTokenStore(db, sessionWrites);
    this.pools = new SqlitePoolStore(db);
    this.registrationTokens = new SqliteRegistrationTokenStore(db);
    this.runners = new SqliteRunnerStore(db, sessionWrites);
    this.runnerTokens = new SqliteRunnerTokenStore(db, sessionWrites);
    this.audit = new SqliteAuditStore(db);
    this.jobs = new SqliteJobStore(db);
    this.stats = new SqliteStatsStore(db);
    this.hosted = new SqliteHostedStore(db);
  }

  /** Opens (creating the directory and file if needed) and migrates. */
  static open(file: string): SqliteStore {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const db = openDatabase(file);
    try {
      migrate(db);
    } catch (err) {
      db.close();
      throw err;
    }
    return new SqliteStore(db);
  }

  /** Told the duration (seconds) of each fdatasync that made commits durable; none for an in-memory database. */
  observeWalSyncs(observer: (seconds: number) => void): void {
    const wal = WalSync.of(this.db);
    if (wal) wal.observer = observer;
  }

  /**
   * Told when an fdatasync of the WAL fails. Its commits' durability is then
   * unknown, and a later fdatasync that succeeds proves nothing: Linux may
   * have dropped the pages that failed to write, and clears the error once
   * reported. The only safe answer (PostgreSQL's too) is to stop and recover
   * from what is on disk.
   */
  onWalSyncFailure(handler: (err: NodeJS.ErrnoException) => void): void {
    const wal = WalSync.of(this.db);
    if (wal) wal.onFailure = handler;
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
    WalSync.closeFor(this.db);
  }
}
