import { closeSync, fdatasync, openSync } from 'node:fs';
import type { Db } from './db.js';

/**
 * fdatasyncs at once. A group commit waits for the running one before it
 * commits (GroupCommit.flush), but one that collects (heartbeats, collectMs)
 * commits whenever its timer fires, and starts its own fdatasync rather than
 * wait for the running one to end; more than two only queue in the kernel
 * behind each other.
 */
const MAX_IN_FLIGHT = 2;

const syncers = new WeakMap<Db, WalSync | null>();

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Makes WAL commits durable without blocking the event loop.
 *
 * A commit made with synchronous=NORMAL is in the WAL file (it survives the
 * process crashing) but not yet on disk. fdatasync() of the WAL file, run on
 * libuv's thread pool, then puts every frame written before it on disk —
 * exactly what synchronous=FULL would have done inside the commit, on the
 * main thread. The WAL is written in order, so one fdatasync covers every
 * commit before it: callers that arrive while MAX_IN_FLIGHT are running share
 * the next one.
 *
 * Readers on this connection see a commit before its fdatasync ends. That is
 * safe as long as every effect that leaves the process (an answer, a pushed
 * frame) waits for its own write to be durable: that write's fdatasync covers
 * everything committed before it.
 */
export class WalSync {
  private fd: number | null = null;
  private running = 0;
  private waiting: Waiter[] = [];
  /** The callers of each fdatasync running, oldest first. */
  private inFlight: Waiter[][] = [];
  private closed = false;
  /** Called once each, when the next fdatasync ends (GroupCommit's deferred flush). */
  private afterNext: (() => void)[] = [];
  /** Told how long each fdatasync took (seconds): the disk's share of every answer's latency. */
  observer: ((seconds: number) => void) | null = null;
  /** Told when an fdatasync fails (the coordinator stops: see SqliteStore.onWalSyncFailure). */
  onFailure: ((err: NodeJS.ErrnoException) => void) | null = null;
  /** The fdatasync to use; tests put a failing one here, the disk's edge, to see what a failure does. */
  static fdatasync: typeof fdatasync = fdatasync;

  private constructor(private readonly walFile: string) {}

  /** The connection's syncer (one per connection, shared by its group commits), or null without a WAL file. */
  static of(db: Db): WalSync | null {
    if (!syncers.has(db)) {
      const wal = !db.memory && String(db.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal';
      syncers.set(db, wal ? new WalSync(`${db.name}-wal`) : null);
    }
    return syncers.get(db)!;
  }

  /** Resolves once everything committed before this call is on disk. */
  sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error('the database is closed'));
      this.waiting.push({ resolve, reject });
      if (this.running < MAX_IN_FLIGHT) this.start();
    });
  }

  /** Whether an fdatasync is running now. */
  get busy(): boolean {
    return this.running > 0;
  }

  /** Calls `fn` once, right after the next fdatasync to end (succeeded or failed). */
  afterNextSync(fn: () => void): void {
    this.afterNext.push(fn);
  }

  /** Closes the connection's syncer, if it has one (after db.close(): no pragma is asked). */
  static closeFor(db: Db): void {
    syncers.get(db)?.close();
  }

  /** Takes no more callers; closes the WAL file once those waiting are served. */
  close(): void {
    this.closed = true;
    if (this.running === 0 && this.waiting.length === 0) this.release();
  }

  private start(): void {
    const batch = this.waiting;
    this.waiting = [];
    let fd: number;
    try {
      fd = this.open();
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    this.running++;
    this.inFlight.push(batch);
    const startedAt = performance.now();
    WalSync.fdatasync(fd, (err) => {
      this.running--;
      if (!err) this.observer?.((performance.now() - startedAt) / 1000);
      const at = this.inFlight.indexOf(batch);
      if (err) {
        // This one failed: its commits are in the WAL but their durability unknown, and its callers must hear it.
        if (at >= 0) this.inFlight.splice(at, 1);
        for (const w of batch) w.reject(err);
        this.onFailure?.(err);
      } else if (at >= 0) {
        // Everything written before it started is on disk: its callers and those of any earlier one still
        // running. Settled in commit order, so a job's end is never announced before the log written ahead of it.
        for (const earlier of this.inFlight.splice(0, at + 1)) for (const w of earlier) w.resolve();
      }
      // Callers that committed before close() are still served: their frames are in the file the fd names.
      if (this.waiting.length > 0) this.start();
      else if (this.closed && this.running === 0) this.release();
      for (const fn of this.afterNext.splice(0)) fn();
    });
  }

  /**
   * The WAL file, opened on first use. Its directory entry is already durable:
   * SQLite syncs the directory when it creates the WAL under synchronous=FULL,
   * which openDatabase sets before the first write.
   */
  private open(): number {
    this.fd ??= openSync(this.walFile, 'r');
    return this.fd;
  }

  private release(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }
}
