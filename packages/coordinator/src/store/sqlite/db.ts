import Database from 'better-sqlite3';

export type Db = Database.Database;

/**
 * Opens the SQLite file with the settings a server needs: WAL so readers never
 * wait for the writer, synchronous=FULL so a committed registration or token
 * promotion survives power loss, foreign keys enforced, a busy timeout
 * instead of SQLITE_BUSY when another process (a backup, the sqlite3 shell)
 * holds the lock for a moment, and a page cache for a busy fleet.
 */
export function openDatabase(file: string): Db {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    // Up to 64 MiB of pages (the default is 2 MiB): the jobs around a busy queue's head, and the
    // right ends of its indexes, stay in memory instead of being read back from the WAL.
    db.pragma('cache_size = -65536');
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

const cache = new WeakMap<Db, Map<string, Database.Statement>>();

/** A prepared statement, prepared once per connection. */
export function stmt(db: Db, sql: string): Database.Statement {
  let byText = cache.get(db);
  if (!byText) {
    byText = new Map();
    cache.set(db, byText);
  }
  let prepared = byText.get(sql);
  if (!prepared) {
    prepared = db.prepare(sql);
    byText.set(sql, prepared);
  }
  return prepared;
}

/** JSON columns: parse what this code wrote; null stays null. */
export function fromJson<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

export function toJson(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
