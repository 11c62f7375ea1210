import { isTerminalJobState } from '@rbtk/protocol';
import type { JobChange, JobRecord } from '../job-rows.js';
import { QueuedSeqs } from './queued-seqs.js';

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

/** The jobs a transaction changed, and what it has yet to write. */
class Layer {
  readonly jobs = new Map<string, JobRecord>();
  readonly columns = new Map<string, Set<keyof JobChange>>();
  readonly events: PendingEvent[] = [];

  apply(s: Staged): void {
    this.jobs.set(s.job.id, s.job);
    if (s.columns) {
      let cols = this.columns.get(s.job.id);
      if (!cols) this.columns.set(s.job.id, (cols = new Set()));
      for (const c of s.columns) cols.add(c);
    }
    if (s.event !== null) this.events.push({ job: s.job, at: s.event });
  }
}

/** One change staged by a write: the job as it leaves it, the columns to write (none for an insert), its event. */
interface Staged {
  job: JobRecord;
  columns: readonly (keyof JobChange)[] | null;
  event: number | null;
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
 * While every unfinished job of the table is here (`complete`: loaded at
 * open, and none turned away at the limit since), each pool's queue is read
 * from memory too (QueuedSeqs) instead of the table's index.
 *
 * Writes are staged in layers that follow the group commit: a write's own
 * (dropped when its savepoint is rolled back), then the transaction's, which
 * reaches the committed map only once the transaction has committed.
 */
export class LiveJobs {
  private readonly committed = new Map<string, JobRecord>();
  /** The committed ones by seq (rowid), which every index of the table carries: a queue read needs no row. */
  private readonly bySeq = new Map<number, JobRecord>();
  /** Each pool's committed queued jobs, by seq. */
  private readonly queues = new Map<number, QueuedSeqs>();
  /** Every unfinished job of the table is in `committed`: the queues are whole. */
  private whole = false;
  private transaction = new Layer();
  /** The current write's changes, in order (a write touches a job or two: a list beats maps here). */
  private write: Staged[] | null = null;

  /** `limit`: most jobs held; past it, unfinished jobs are read from the table and the queues too. */
  constructor(readonly limit: number) {}

  get(id: string): JobRecord | undefined {
    if (this.write) {
      for (let i = this.write.length - 1; i >= 0; i--) if (this.write[i]!.job.id === id) return this.write[i]!.job;
    }
    return this.transaction.jobs.get(id) ?? this.committed.get(id);
  }

  /** A committed unfinished job by its seq (outside a transaction: what the table holds). */
  committedBySeq(seq: number): JobRecord | undefined {
    return this.bySeq.get(seq);
  }

  /** Whether every unfinished job of the table is here, so queued() and poolsWithQueued() answer for it. */
  get complete(): boolean {
    return this.whole;
  }

  get size(): number {
    return this.committed.size;
  }

  /**
   * All the table's unfinished jobs, read outside any transaction (at open,
   * or to become whole again after the limit turned jobs away).
   */
  load(jobs: readonly JobRecord[]): void {
    for (const job of jobs) if (!this.committed.has(job.id)) this.admit(job);
    this.whole = this.committed.size <= this.limit;
  }

  /** Up to `limit` committed queued jobs of the pool after `afterSeq`, FIFO (only when complete). */
  queued(poolId: number, afterSeq: number, limit: number): JobRecord[] {
    const seqs = this.queues.get(poolId)?.read(afterSeq, limit) ?? [];
    return seqs.map((seq) => this.bySeq.get(seq)!);
  }

  /** Pools with a committed queued job (only when complete). */
  poolsWithQueued(): number[] {
    return [...this.queues].filter(([, q]) => q.size > 0).map(([poolId]) => poolId);
  }

  /** `job` as a row just inserted holds it: nothing left to write but its event. */
  inserted(job: JobRecord, at: number): void {
    this.stage({ job, columns: null, event: at });
  }

  /** The job as the current write leaves it: `columns` to write, and an event if its state changed. */
  changed(job: JobRecord, columns: readonly (keyof JobChange)[], event: number | null): void {
    this.stage({ job, columns, event });
  }

  private stage(s: Staged): void {
    if (this.write) this.write.push(s);
    else this.transaction.apply(s);
  }

  /** Runs one write of a group commit: what it staged counts only if it returns. */
  within<T>(fn: () => T): T {
    if (this.write) return fn(); // nested: part of the enclosing write
    const own: Staged[] = [];
    this.write = own;
    try {
      const value = fn();
      for (const s of own) this.transaction.apply(s);
      return value;
    } finally {
      this.write = null;
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
        this.queues.get(job.poolId)?.delete(job.seq);
      } else if (this.committed.has(id) || this.committed.size < this.limit) {
        this.admit(job);
      } else {
        this.whole = false; // an unfinished job only the table has: its queue must be read there
      }
    }
  }

  private admit(job: JobRecord): void {
    this.committed.set(job.id, job);
    this.bySeq.set(job.seq, job);
    let queue = this.queues.get(job.poolId);
    if (job.state === 'queued') {
      if (!queue) this.queues.set(job.poolId, (queue = new QueuedSeqs()));
      queue.add(job.seq);
    } else {
      queue?.delete(job.seq);
    }
  }
}
