import type { JobSpec, JobState, LogStream } from '@rbtk/protocol';
import type {
  AppendLogResult,
  JobChange,
  JobDecision,
  JobEventRow,
  JobRecord,
  JobTransition,
  LogChunkRow,
  NewJob,
} from '../job-rows.js';
import type { JobListFilter, JobStore, SubmitResult } from '../job-store.js';
import { isTruncationMarker, truncationMarker, utf8Prefix } from '../log-limit.js';
import type Database from 'better-sqlite3';
import { type Db, isUniqueViolation, stmt } from './db.js';
import { GroupCommit } from './group-commit.js';
import { LIVE_JOBS_LIMIT, LiveJobs, type PendingEvent } from './live-jobs.js';

interface JobSql {
  seq: number;
  id: string;
  project: string;
  pool_id: number;
  pool_name: string;
  state: string;
  spec: string;
  timeout_ms: number;
  retries: number;
  idempotency_key: string | null;
  attempt: number;
  failures: number;
  runner_id: string | null;
  exit_code: number | null;
  reason: string | null;
  excluded: string;
  cancel_requested: number;
  log_bytes: number;
  version: number;
  created_at: number;
  assigned_at: number | null;
  started_at: number | null;
  finished_at: number | null;
}

const COLUMN: Record<keyof JobChange, string> = {
  state: 'state',
  attempt: 'attempt',
  failures: 'failures',
  runnerId: 'runner_id',
  exitCode: 'exit_code',
  reason: 'reason',
  excluded: 'excluded',
  cancelRequested: 'cancel_requested',
  logBytes: 'log_bytes',
  assignedAt: 'assigned_at',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
};

function toSqlValue(key: keyof JobChange, value: unknown): unknown {
  if (key === 'excluded') return JSON.stringify(value);
  if (key === 'cancelRequested') return value ? 1 : 0;
  return value;
}

/*
 * Every JobRecord is built by one object literal with its fields in one
 * order (here and in job() below), so V8 gives them all one shape: spreading
 * ({ ...before, ...change }) made a new shape per change and missed the
 * inline caches on the hot path.
 */

/** A changed field (null included) or, left out of the change, the one before. */
const or = <T>(changed: T | undefined, was: T): T => (changed !== undefined ? changed : was);

/** The job after a change: a state change counts one more version. */
function next(b: JobRecord, c: JobChange, seq = b.seq): JobRecord {
  const state = c.state ?? b.state;
  return {
    seq,
    id: b.id,
    project: b.project,
    poolId: b.poolId,
    poolName: b.poolName,
    state,
    spec: b.spec,
    timeoutMs: b.timeoutMs,
    retries: b.retries,
    idempotencyKey: b.idempotencyKey,
    attempt: or(c.attempt, b.attempt),
    failures: or(c.failures, b.failures),
    runnerId: or(c.runnerId, b.runnerId),
    exitCode: or(c.exitCode, b.exitCode),
    reason: or(c.reason, b.reason),
    excluded: or(c.excluded, b.excluded),
    cancelRequested: or(c.cancelRequested, b.cancelRequested),
    logBytes: or(c.logBytes, b.logBytes),
    version: b.version + (state !== b.state ? 1 : 0),
    createdAt: b.createdAt,
    assignedAt: or(c.assignedAt, b.assignedAt),
    startedAt: or(c.startedAt, b.startedAt),
    finishedAt: or(c.finishedAt, b.finishedAt),
  };
}

const NO_CHANGE: JobChange = {};

/** The INSERT's parameters, in its column order. */
function insertParams(j: JobRecord, spec: string): unknown[] {
  return [
    j.id, j.project, j.poolId, spec, j.timeoutMs, j.retries, j.idempotencyKey, j.createdAt, j.state, j.attempt,
    j.failures, j.runnerId, j.exitCode, j.reason, toSqlValue('excluded', j.excluded), toSqlValue('cancelRequested', j.cancelRequested),
    j.logBytes, j.version, j.assignedAt, j.startedAt, j.finishedAt,
  ];
}

const SELECT_JOBS = 'SELECT j.*, p.name AS pool_name FROM jobs j JOIN pools p ON p.id = j.pool_id';

const job = (r: JobSql): JobRecord => ({
  seq: r.seq,
  id: r.id,
  project: r.project,
  poolId: r.pool_id,
  poolName: r.pool_name,
  state: r.state as JobState,
  spec: JSON.parse(r.spec) as JobSpec,
  timeoutMs: r.timeout_ms,
  retries: r.retries,
  idempotencyKey: r.idempotency_key,
  attempt: r.attempt,
  failures: r.failures,
  runnerId: r.runner_id,
  exitCode: r.exit_code,
  reason: r.reason,
  excluded: JSON.parse(r.excluded) as string[],
  cancelRequested: r.cancel_requested === 1,
  logBytes: r.log_bytes,
  version: r.version,
  createdAt: r.created_at,
  assignedAt: r.assigned_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
});

/** How often, at most, a store whose memory turned jobs away tries to load them all again. */
const RELOAD_EVERY_MS = 10_000;

/** job_events rows per INSERT statement, largest first: a transaction's events go in a few statements. */
const EVENT_CHUNKS = [64, 16, 4, 1];

/*
 * Writes (submit, transitions, log appends) go through a group commit: one
 * transaction per event-loop turn, each caller answered after it is durable.
 * Unfinished jobs are also kept in memory as committed, and a transaction's
 * row changes and events are written once, as it ends (LiveJobs): a state
 * change then costs no read, and a job that changes twice in one transaction
 * one UPDATE.
 */
export class SqliteJobStore implements JobStore {
  private readonly group: GroupCommit;
  private readonly updates = new Map<string, Database.Statement>();
  private readonly live: LiveJobs;
  private lastLoadAt = 0;

  /** `liveJobs`: most unfinished jobs kept in memory (tests lower it). */
  constructor(
    private readonly db: Db,
    { liveJobs = LIVE_JOBS_LIMIT }: { liveJobs?: number } = {},
  ) {
    this.live = new LiveJobs(liveJobs);
    this.group = new GroupCommit(db, {
      fsync: true,
      beforeCommit: () => this.writePending(),
      settled: (committed) => this.live.settle(committed),
    });
    this.loadUnfinished();
  }

  /**
   * The table's unfinished jobs into memory, when they fit: then the queues
   * are read from memory. Runs outside any transaction (at open, and from
   * reads between group commits), so what it reads is what is committed.
   * Over the limit, only a count is read.
   */
  private loadUnfinished(): void {
    this.lastLoadAt = Date.now();
    const count = (state: string) => stmt(this.db, `SELECT COUNT(*) FROM jobs WHERE state ${state}`).pluck().get() as number;
    // Two statements, so each is answered from its partial index (jobs_queue, jobs_in_flight).
    if (count("= 'queued'") + count("IN ('assigned', 'running')") > this.live.limit) return;
    const rows = [
      ...(stmt(this.db, `${SELECT_JOBS} WHERE j.state = 'queued' ORDER BY j.seq`).all() as JobSql[]),
      ...(stmt(this.db, `${SELECT_JOBS} WHERE j.state IN ('assigned', 'running')`).all() as JobSql[]),
    ];
    this.live.load(rows.map(job));
  }

  /** Whether the queues can be read from memory; once jobs were turned away, tries to load them again now and then. */
  private queuesInMemory(): boolean {
    if (!this.live.complete && this.live.size <= this.live.limit / 2 && Date.now() - this.lastLoadAt >= RELOAD_EVERY_MS) {
      this.loadUnfinished();
    }
    return this.live.complete;
  }

  /**
   * A write of the group commit whose jobs, as it leaves them, count once its
   * transaction commits. `sql: false`: it only stages (transitions), so a
   * throw has nothing in the table to roll back, and it needs no savepoint.
   */
  private write<T>(fn: () => T, { sql = true }: { sql?: boolean } = {}): Promise<T> {
    return this.group.run(() => this.live.within(fn), { writes: sql });
  }

  /** The job as this transaction sees it: from memory when unfinished, else from the table. */
  private current(id: string): JobRecord | null {
    return this.live.get(id) ?? this.getSync(id);
  }

  private getSync(id: string): JobRecord | null {
    const r = stmt(this.db, `${SELECT_JOBS} WHERE j.id = ?`).get(id) as JobSql | undefined;
    return r ? job(r) : null;
  }

  private bySeq(seq: number): JobRecord | null {
    const r = stmt(this.db, `${SELECT_JOBS} WHERE j.seq = ?`).get(seq) as JobSql | undefined;
    return r ? job(r) : null;
  }

  async getByIdempotencyKey(project: string, key: string): Promise<JobRecord | null> {
    return this.liveByKey(project, key);
  }

  /** The job with the key as it stands now: its in-memory state while it is live, else its row. */
  private liveByKey(project: string, key: string): JobRecord | null {
    const found = this.byKey(project, key);
    return found && (this.live.get(found.id) ?? found);
  }

  private byKey(project: string, key: string): JobRecord | null {
    const r = stmt(this.db, `${SELECT_JOBS} WHERE j.project = ? AND j.idempotency_key = ?`).get(project, key) as
      | JobSql
      | undefined;
    return r ? job(r) : null;
  }

  async submit(n: NewJob, assign?: JobDecision): Promise<SubmitResult> {
    const key = n.spec.idempotencyKey ?? null;
    const run = (): SubmitResult => {
      if (key !== null) {
        const existing = this.liveByKey(n.project, key);
        if (existing) return { job: existing, created: false };
      }
      // The row as it will be written (the column defaults spelled out): no read back.
      const queued: JobRecord = {
        seq: 0,
        id: n.id,
        project: n.project,
        poolId: n.poolId,
        poolName: n.poolName,
        state: 'queued',
        spec: n.spec,
        timeoutMs: n.timeoutMs,
        retries: n.spec.retries,
        idempotencyKey: key,
        attempt: 0,
        failures: 0,
        runnerId: null,
        exitCode: null,
        reason: null,
        excluded: [],
        cancelRequested: false,
        logBytes: 0,
        version: 1,
        createdAt: n.createdAt,
        assignedAt: null,
        startedAt: null,
        finishedAt: null,
      };
      // Assigned at once: the row is inserted as assigned, with both events.
      const change = assign?.(queued) ?? null;
      const assigned = change ? next(queued, change) : null;
      const { lastInsertRowid } = stmt(
        this.db,
        `INSERT INTO jobs (id, project, pool_id, spec, timeout_ms, retries, idempotency_key, created_at, state, attempt,
           failures, runner_id, exit_code, reason, excluded, cancel_requested, log_bytes, version, assigned_at, started_at, finished_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(insertParams(assigned ?? queued, JSON.stringify(n.spec)));
      const seq = Number(lastInsertRowid);
      const job = next(queued, NO_CHANGE, seq);
      this.live.inserted(job, n.createdAt);
      if (!assigned) return { job, created: true };
      const after = next(assigned, NO_CHANGE, seq);
      this.live.inserted(after, n.createdAt);
      return { job, created: true, assigned: { before: job, after } };
    };
    try {
      return await this.write(run);
    } catch (err) {
      // Another connection inserted the same key between our check and insert.
      if (key !== null && isUniqueViolation(err)) return { job: this.byKey(n.project, key)!, created: false };
      throw err;
    }
  }

  async get(id: string): Promise<JobRecord | null> {
    return this.getSync(id);
  }

  async list(f: JobListFilter): Promise<JobRecord[]> {
    const rows = stmt(
      this.db,
      `${SELECT_JOBS} WHERE j.project = @project AND (@pool IS NULL OR j.pool_id = @pool)
         AND (@state IS NULL OR j.state = @state) ORDER BY j.seq DESC LIMIT @limit`,
    ).all({ project: f.project, pool: f.poolId ?? null, state: f.state ?? null, limit: f.limit }) as JobSql[];
    return rows.map(job);
  }

  async listQueued(poolId: number, afterSeq: number, limit: number): Promise<JobRecord[]> {
    if (this.queuesInMemory()) return this.live.queued(poolId, afterSeq, limit);
    // Seqs (rowids) from the queue's index alone; the jobs themselves from memory where they are (nearly always).
    // The limit is in the SQL text: bound as a parameter it cost 8 µs more per query, four times the read.
    // Rounded up to a power of two, so a handful of statements serve every limit.
    const rounded = 2 ** Math.ceil(Math.log2(Math.max(1, limit)));
    const seqs = (
      stmt(this.db, `SELECT seq FROM jobs WHERE pool_id = ? AND state = 'queued' AND seq > ? ORDER BY seq LIMIT ${rounded}`)
        .pluck()
        .all(poolId, afterSeq) as number[]
    ).slice(0, limit);
    const out: JobRecord[] = [];
    for (const seq of seqs) {
      const j = this.live.committedBySeq(seq) ?? this.bySeq(seq);
      if (j) out.push(j);
    }
    return out;
  }

  async poolsWithQueued(): Promise<number[]> {
    if (this.queuesInMemory()) return this.live.poolsWithQueued();
    const rows = stmt(this.db, "SELECT DISTINCT pool_id FROM jobs WHERE state = 'queued'").all() as { pool_id: number }[];
    return rows.map((r) => r.pool_id);
  }

  async inFlight(runnerId: string): Promise<JobRecord[]> {
    const rows = stmt(
      this.db,
      `${SELECT_JOBS} WHERE j.runner_id = ? AND j.state IN ('assigned', 'running') ORDER BY j.seq`,
    ).all(runnerId) as JobSql[];
    return rows.map(job);
  }

  async orphaned(): Promise<JobRecord[]> {
    const rows = stmt(
      this.db,
      `${SELECT_JOBS} LEFT JOIN runners r ON r.id = j.runner_id
       WHERE j.state IN ('assigned', 'running') AND (r.id IS NULL OR r.status = 'OFFLINE') ORDER BY j.seq`,
    ).all() as JobSql[];
    return rows.map(job);
  }

  async overdue(now: number, graceMs: number): Promise<JobRecord[]> {
    // Running past its timeout; or accepted and never started for as long (the runner's own timer runs
    // from its accept: it would have stopped the attempt by then).
    const rows = stmt(
      this.db,
      `${SELECT_JOBS} WHERE (j.state = 'running' AND j.started_at + j.timeout_ms + ? <= ?)
          OR (j.state = 'assigned' AND j.assigned_at + j.timeout_ms + ? <= ?) ORDER BY j.seq`,
    ).all(graceMs, now, graceMs, now) as JobSql[];
    return rows.map(job);
  }

  async transition(items: { jobId: string; decide: JobDecision }[], now: number): Promise<JobTransition[]> {
    if (items.length === 0) return [];
    return this.write(
      (): JobTransition[] => {
        const done: JobTransition[] = [];
        for (const { jobId, decide } of items) {
          const before = this.current(jobId);
          const t = before && this.apply(before, decide, now);
          if (t) done.push(t);
        }
        return done;
      },
      { sql: false },
    );
  }

  /** One decision on one job, inside the caller's transaction: staged, written as the transaction ends. */
  private apply(before: JobRecord, decide: JobDecision, now: number): JobTransition | null {
    const change = decide(before);
    if (!change) return null;
    const after = next(before, change);
    // Only the columns whose value changes: a decision also names fields it resets (startedAt: null on
    // assignment), and each named column is bound and checked against the indexes that hold it.
    const columns = (Object.keys(change) as (keyof JobChange)[]).filter((k) => after[k] !== before[k]);
    this.live.changed(after, columns, after.version !== before.version ? now : null);
    return { before, after };
  }

  /** The transaction's staged writes, just before it commits: each changed row once, then its events. */
  private writePending(): void {
    const { rows, events } = this.live.pending();
    for (const { job, columns } of rows) {
      if (columns.size > 0 && !this.update(job, [...columns])) {
        // A pool is deleted only once it has no unfinished job: a live row cannot vanish.
        throw new Error(`job ${job.id} is not in the jobs table`);
      }
    }
    this.insertEvents(events);
  }

  /**
   * Writes only the columns the change names (plus version): SQLite then
   * maintains only the indexes on those columns. One prepared statement per
   * column set, cached. By seq, the rowid: no lookup in the id index.
   */
  private update(after: JobRecord, keys: (keyof JobChange)[]): boolean {
    const cols = keys.sort();
    const params: unknown[] = [];
    for (const k of cols) params.push(toSqlValue(k, after[k]));
    params.push(after.version, after.seq);
    return this.updateFor(cols).run(params).changes === 1;
  }

  private insertEvents(events: PendingEvent[]): void {
    let i = 0;
    for (const size of EVENT_CHUNKS) {
      for (; events.length - i >= size; i += size) {
        const values: unknown[] = [];
        for (let k = i; k < i + size; k++) {
          const { job: j, at } = events[k]!;
          values.push(j.seq, at, j.state, j.attempt, j.runnerId, j.reason, j.exitCode);
        }
        stmt(
          this.db,
          `INSERT INTO job_events (job_seq, at, state, attempt, runner_id, reason, exit_code) VALUES ${Array(size).fill('(?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
        ).run(values);
      }
    }
  }

  /** The UPDATE for a column set, keyed by the set itself so a hot path builds no SQL text. */
  private updateFor(cols: (keyof JobChange)[]): Database.Statement {
    const key = cols.join(',');
    let prepared = this.updates.get(key);
    if (!prepared) {
      // Positional: binding named parameters from an object costs more than the rest of the call.
      const sets = cols.map((k) => `${COLUMN[k]} = ?`);
      sets.push('version = ?');
      prepared = stmt(this.db, `UPDATE jobs SET ${sets.join(', ')} WHERE seq = ?`);
      this.updates.set(key, prepared);
    }
    return prepared;
  }

  async events(jobId: string): Promise<JobEventRow[]> {
    const rows = stmt(
      this.db,
      'SELECT e.* FROM job_events e WHERE e.job_seq = (SELECT seq FROM jobs WHERE id = ?) ORDER BY e.id',
    ).all(jobId) as {
      id: number;
      at: number;
      state: string;
      attempt: number;
      runner_id: string | null;
      reason: string | null;
      exit_code: number | null;
    }[];
    return rows.map((r) => ({
      id: r.id,
      jobId,
      at: r.at,
      state: r.state as JobState,
      attempt: r.attempt,
      runnerId: r.runner_id,
      reason: r.reason,
      exitCode: r.exit_code,
    }));
  }

  async appendLog(c: Omit<LogChunkRow, 'size'>, runnerId?: string, maxBytes = Number.POSITIVE_INFINITY): Promise<AppendLogResult> {
    return this.write((): AppendLogResult => {
        const j = this.current(c.jobId);
        // Fenced by attempt and runner: another runner knowing the job id must not write into its log.
        if (!j || j.attempt !== c.attempt || (runnerId !== undefined && j.runnerId !== runnerId)) return { kind: 'stale' };
        const size = Buffer.byteLength(c.data, 'utf8');
        // Cut already (its marker put the length past the limit, or ends it under another limit): the runner's
        // offsets run on past the stored ones, so every chunk is acknowledged and dropped.
        if (j.logBytes > maxBytes || (c.offset !== j.logBytes && this.endsWithMarker(j.id, j.attempt, j.logBytes))) {
          return { kind: 'truncated', length: c.offset + size, appended: [] };
        }
        if (c.offset < j.logBytes) return { kind: 'stored', length: j.logBytes, appended: false };
        if (c.offset > j.logBytes) return { kind: 'gap', length: j.logBytes };
        if (size === 0) return { kind: 'stored', length: j.logBytes, appended: false };
        if (c.offset + size <= maxBytes) {
          this.insertLog({ ...c, size });
          this.live.changed(next(j, { logBytes: c.offset + size }), ['logBytes'], null);
          return { kind: 'stored', length: c.offset + size, appended: true };
        }
        // This chunk crosses the limit: what fits below it, then the marker, and nothing more of this attempt.
        const appended: LogChunkRow[] = [];
        const head = utf8Prefix(c.data, maxBytes - c.offset);
        if (head !== '') appended.push({ ...c, data: head, size: Buffer.byteLength(head, 'utf8') });
        const at = c.offset + (appended[0]?.size ?? 0);
        const marker = truncationMarker(at, maxBytes);
        appended.push({ jobId: c.jobId, attempt: c.attempt, offset: at, size: Buffer.byteLength(marker, 'utf8'), stream: 'stderr', data: marker });
        for (const chunk of appended) this.insertLog(chunk);
        this.live.changed(next(j, { logBytes: at + appended.at(-1)!.size }), ['logBytes'], null);
        return { kind: 'truncated', length: c.offset + size, appended };
      });
  }

  private insertLog(c: LogChunkRow): void {
    stmt(
      this.db,
      'INSERT INTO job_logs (job_id, attempt, byte_offset, size, stream, data) VALUES (?, ?, ?, ?, ?, ?)',
    ).run(c.jobId, c.attempt, c.offset, c.size, c.stream, c.data);
  }

  /** Whether the attempt's stored log (`length` bytes) ends with the truncation marker. Only asked off the hot path. */
  private endsWithMarker(jobId: string, attempt: number, length: number): boolean {
    const last = stmt(
      this.db,
      'SELECT byte_offset, size, data FROM job_logs WHERE job_id = ? AND attempt = ? ORDER BY byte_offset DESC LIMIT 1',
    ).get(jobId, attempt) as { byte_offset: number; size: number; data: string } | undefined;
    return last !== undefined && last.byte_offset + last.size === length && isTruncationMarker(last.byte_offset, last.data);
  }

  async logs(jobId: string, attempt: number, fromOffset: number, limit = -1): Promise<LogChunkRow[]> {
    const rows = stmt(
      this.db,
      `SELECT byte_offset, size, stream, data FROM job_logs
       WHERE job_id = ? AND attempt = ? AND byte_offset + size > ? ORDER BY byte_offset LIMIT ?`,
    ).all(jobId, attempt, fromOffset, limit) as { byte_offset: number; size: number; stream: string; data: string }[];
    return rows.map((r) => ({ jobId, attempt, offset: r.byte_offset, size: r.size, stream: r.stream as LogStream, data: r.data }));
  }
}
