import { type Db, stmt } from './db.js';

interface Pending {
  fn: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit: writes queued during one turn of the event loop run in one
 * transaction, and each caller's promise settles only after that transaction
 * is committed (synchronous=FULL: on disk). One fsync then covers hundreds of
 * job state changes instead of one each. Each write runs in its own savepoint,
 * so one that throws is rolled back alone and only its caller sees the error.
 *
 * `fsync: false` commits with synchronous=NORMAL instead: the batch is in the
 * WAL (it survives the process crashing) but not fsynced (a power cut may lose
 * it), for writes that need no more, such as heartbeats.
 */
export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled = false;

  constructor(
    private readonly db: Db,
    private readonly options: { fsync: boolean } = { fsync: true },
  ) {}

  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
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
            savepoint.run();
            try {
              outcomes.push({ ok: true, value: p.fn() });
            } catch (err) {
              rollback.run();
              outcomes.push({ ok: false, err });
            }
            release.run();
          }
        }).immediate();
      });
    } catch (err) {
      // The commit itself failed (or the database is closed): nothing of this batch is stored.
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.ok) p.resolve(o.value);
      else p.reject(o.err);
    });
  }

  /** Runs the transaction with synchronous=NORMAL when this group does not fsync. */
  private commit(fn: () => void): void {
    if (this.options.fsync) return fn();
    const synchronous = this.db.pragma('synchronous', { simple: true }) as number;
    this.db.pragma('synchronous = NORMAL');
    try {
      fn();
    } finally {
      this.db.pragma(`synchronous = ${synchronous}`);
    }
  }
}
