import { type Db, stmt } from './db.js';
import { WalSync } from './wal-sync.js';

interface Pending {
  fn: () => unknown;
  /** Runs in a savepoint of its own (false: it executes no write, so there is nothing to roll back). */
  savepoint: boolean;
  /** Its caller waits for the fdatasync (false: for the commit only). */
  durable: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit: writes queued during one turn of the event loop run in one
 * transaction, and each caller's promise settles only after that transaction
 * is on disk. One fsync then covers hundreds of job state changes instead of
 * one each. While an fdatasync runs, writes keep queuing and commit together
 * as soon as it ends: under load a commit then carries more jobs, and writes
 * each page they share (an index's right edge, the events table's last page)
 * to the WAL once instead of once per turn. Each write runs in its own savepoint, so one that throws is rolled
 * back alone and only its caller sees the error.
 *
 * The transaction commits with synchronous=NORMAL (into the WAL, no fsync on
 * the event loop), then WalSync fdatasyncs the WAL off the main thread and the
 * callers settle. Without a WAL file (an in-memory database) the commit is
 * synchronous=FULL as before.
 *
 * A write run with `durable: false` (or every write, given `fsync: false`)
 * settles right after the commit: it is in the WAL (it survives the process
 * crashing) but a power cut may lose it, for writes that need no more, such
 * as heartbeats. Durable and other writes share transactions: a heartbeat and
 * the token rotation it starts cost one commit.
 */
export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled = false;

  /** Null for a database without a WAL file (in memory): its commits are synchronous=FULL. */
  private readonly wal: WalSync | null;

  constructor(
    private readonly db: Db,
    private readonly options: {
      /** Whether a write waits for the fdatasync unless it says otherwise (run's `durable`). */
      fsync: boolean;
      /**
       * Collects writes this long (ms) before committing them, instead of to
       * the end of the turn: for writes nobody waits on closely (heartbeats),
       * so that a fleet's, spread over time, share commits.
       */
      collectMs?: number;
      /** Runs inside each transaction after its writes: what they left to write at the end. Throwing fails them all. */
      beforeCommit?: () => void;
      /** Told, right after each transaction, whether it committed (before any caller is answered). */
      settled?: (committed: boolean) => void;
    } = { fsync: true },
  ) {
    this.wal = WalSync.of(db);
  }

  /**
   * Runs `fn` in the next transaction; resolves once that is durable.
   * `writes: false` promises that fn executes no INSERT, UPDATE or DELETE
   * (it may read, and stage changes that its owner drops if it throws):
   * it then runs without a savepoint, two statements fewer. `durable`
   * (the group's `fsync` by default) says whether it waits for the fdatasync.
   */
  run<T>(fn: () => T, { writes = true, durable = this.options.fsync }: { writes?: boolean; durable?: boolean } = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, savepoint: writes, durable, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        if (this.options.collectMs) setTimeout(() => this.flush(), this.options.collectMs);
        else setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    // An fdatasync is running: what queues meanwhile commits right after it, as one transaction.
    // Its callers wait for the running fdatasync to end either way (syncs settle in commit order), so
    // they lose at most the commit's own time; measured (bench:ab), 0.88x the CPU per job.
    if (!this.options.collectMs && this.wal?.busy) {
      this.wal.afterNextSync(() => this.flush());
      return;
    }
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    const outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
    try {
      // Prepared once: a db.transaction() wrapper per write costs more than the write.
      // Inside the try: on a closed database preparing throws, and every caller must hear it.
      const savepoint = stmt(this.db, 'SAVEPOINT group_item');
      const release = stmt(this.db, 'RELEASE group_item');
      const rollback = stmt(this.db, 'ROLLBACK TO group_item');
      this.commit(() => {
        this.db.transaction(() => {
          for (const p of batch) {
            if (p.savepoint) savepoint.run();
            try {
              outcomes.push({ ok: true, value: p.fn() });
            } catch (err) {
              if (p.savepoint) rollback.run();
              outcomes.push({ ok: false, err });
            }
            if (p.savepoint) release.run();
          }
          this.options.beforeCommit?.();
        }).immediate();
      });
    } catch (err) {
      // The commit itself failed (or the database is closed): nothing of this batch is stored.
      this.options.settled?.(false);
      for (const p of batch) p.reject(err);
      return;
    }
    this.options.settled?.(true);
    // Rolled-back writes stored nothing: their callers hear at once. The rest wait for the fdatasync.
    const committed: { p: Pending; value: unknown }[] = [];
    batch.forEach((p, i) => {
      const o = outcomes[i]!;
      if (!o.ok) p.reject(o.err);
      else if (this.wal && p.durable) committed.push({ p, value: o.value });
      else p.resolve(o.value);
    });
    if (committed.length === 0) return;
    this.wal!.sync().then(
      () => committed.forEach(({ p, value }) => p.resolve(value)),
      (err: unknown) => committed.forEach(({ p }) => p.reject(err)),
    );
  }

  /** Runs the transaction with synchronous=NORMAL, unless there is no WAL file to sync after (FULL, in the commit). */
  private commit(fn: () => void): void {
    if (!this.wal) return fn();
    // Prepared once: db.pragma() prepares its statement on every call, twice per flush.
    stmt(this.db, 'PRAGMA synchronous = NORMAL').run();
    try {
      fn();
    } finally {
      stmt(this.db, 'PRAGMA synchronous = FULL').run(); // openDatabase's setting, for every other write
    }
  }
}
