import { isTerminalJobState } from '@rbtk/protocol';
import type { JobChange, JobRecord } from '../job-rows.js';

/** Enough for every in-flight attempt of a large fleet plus a backlog; about 1 KB each. */
export const LIVE_JOBS_LIMIT = 50_000;

/** A job_events row waiting for its transaction's commit. */
export interface PendingEvent {
  job: JobRecord;
  at: number;
}

/** What one transaction has still to write before it commits. */
export interface PendingWrites {
  /** Each changed row once, as the transaction leaves it, with the columns that changed. */
  rows: { job: JobRecord; columns: Set<keyof JobChange> }[];
  /** In the order the changes were made. */
  events: PendingEvent[];
}

/** The jobs one write (or one transaction) changed, and what it has yet to write. */
class Layer {
  readonly jobs = new Map<string, JobRecord>();
  readonly columns = new Map<string, Set<keyof JobChange>>();
  events: PendingEvent[] = [];

  mergeInto(outer: Layer): void {
    for (const [id, job] of this.jobs) outer.jobs.set(id, job);
    for (const [id, cols] of this.columns) {
      const into = outer.columns.get(id);
      if (into) for (const c of cols) into.add(c);
      else outer.columns.set(id, cols);
    }
    for (const e of this.events) outer.events.push(e);
  }
}

/**
 * The store's unfinished jobs as committed, and the writes of the
 * transaction being built, for two reasons:
 *
 * - a state change reads its job from memory instead of a SELECT of the whole
 *   row and two JSON.parse calls, which cost more than the UPDATE itself;
 * - each changed row is written once per transaction, just before it commits,
 *   with the union of its changed columns, and the transaction's job_events
 *   rows in a few multi-row INSERTs. A runner's started and result frames
 *   arrive together and share a transaction, so the row goes from assigned to
 *   succeeded in one UPDATE.
 *
 * SQLite stays the truth: this process is the database's only writer, a job
 * missing here is read from the table, a finished job leaves, and a pool is
 * deleted only once it has no unfinished job.
 *
 * Writes are staged in layers that follow the group commit: a write's own
 * (dropped when its savepoint is rolled back), then the transaction's, which
 * reaches the committed map only once the transaction has committed.
 */
export class LiveJobs {
  private readonly committed = new Map<string, JobRecord>();
  /** The committed ones by seq (rowid), which every index of the table carries: a queue read needs no row. */
  private readonly bySeq = new Map<number, JobRecord>();
  private transaction = new Layer();
  private write: Layer | null = null;

  constructor(private readonly limit: number) {}

  get(id: string): JobRecord | undefined {
    return this.write?.jobs.get(id) ?? this.transaction.jobs.get(id) ?? this.committed.get(id);
  }

  /** A committed unfinished job by its seq (outside a transaction: what the table holds). */
  committedBySeq(seq: number): JobRecord | undefined {
    return this.bySeq.get(seq);
  }

  /** A row just inserted as `job`: nothing left to write but its event. */
  inserted(job: JobRecord, at: number): void {
    const layer = this.write ?? this.transaction;
    layer.jobs.set(job.id, job);
    layer.events.push({ job, at });
  }

  /** The job as the current write leaves it: `columns` to write, and an event if its state changed. */
  changed(job: JobRecord, columns: Iterable<keyof JobChange>, event: number | null): void {
    const layer = this.write ?? this.transaction;
    layer.jobs.set(job.id, job);
    let cols = layer.columns.get(job.id);
    if (!cols) layer.columns.set(job.id, (cols = new Set()));
    for (const c of columns) cols.add(c);
    if (event !== null) layer.events.push({ job, at: event });
  }

  /** Runs one write of a group commit: what it staged counts only if it returns. */
  within<T>(fn: () => T): T {
    const outer = this.write ?? this.transaction;
    const own = new Layer();
    this.write = own;
    try {
      const value = fn();
      own.mergeInto(outer);
      return value;
    } finally {
      this.write = outer === this.transaction ? null : outer;
    }
  }

  /** The transaction's writes still to be made, once, just before it commits. */
  pending(): PendingWrites {
    const t = this.transaction;
    const rows = [...t.columns].map(([id, columns]) => ({ job: t.jobs.get(id)!, columns }));
    return { rows, events: t.events };
  }

  /** The group's transaction committed (what it staged becomes the truth) or failed (what it staged is gone). */
  settle(committed: boolean): void {
    const staged = this.transaction;
    this.transaction = new Layer();
    if (!committed) return;
    for (const [id, job] of staged.jobs) {
      if (isTerminalJobState(job.state)) {
        this.committed.delete(id);
        this.bySeq.delete(job.seq);
      } else if (this.committed.has(id) || this.committed.size < this.limit) {
        this.committed.set(id, job);
        this.bySeq.set(job.seq, job);
      }
    }
  }

  get size(): number {
    return this.committed.size;
  }
}
