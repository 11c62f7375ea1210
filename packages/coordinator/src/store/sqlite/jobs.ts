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
import type Database from 'better-sqlite3';
import { type Db, isUniqueViolation, stmt } from './db.js';
import { GroupCommit } from './group-commit.js';

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

/** What a fresh row holds beyond what submit writes (the table's defaults). */
const NEW_JOB_DEFAULTS = {
  state: 'queued',
  attempt: 0,
  failures: 0,
  runnerId: null,
  exitCode: null,
  reason: null,
  cancelRequested: false,
  logBytes: 0,
  version: 1,
  assignedAt: null,
  startedAt: null,
  finishedAt: null,
} as const;

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

/*
 * Writes (submit, transitions, log appends) go through a group commit: one
 * transaction per event-loop turn, each caller answered after it is durable.
 */
export class SqliteJobStore implements JobStore {
  private readonly group: GroupCommit;
  private readonly updates = new Map<string, Database.Statement>();

  constructor(private readonly db: Db) {
    this.group = new GroupCommit(db);
  }

  private getSync(id: string): JobRecord | null {
    const r = stmt(this.db, `${SELECT_JOBS} WHERE j.id = ?`).get(id) as JobSql | undefined;
    return r ? job(r) : null;
  }

  private byKey(project: string, key: string): JobRecord | null {
    const r = stmt(this.db, `${SELECT_JOBS} WHERE j.project = ? AND j.idempotency_key = ?`).get(project, key) as
      | JobSql
      | undefined;
    return r ? job(r) : null;
  }

  private insertEvent(j: JobRecord, at: number): void {
    stmt(
      this.db,
      'INSERT INTO job_events (job_id, at, state, attempt, runner_id, reason, exit_code) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ).run(j.id, at, j.state, j.attempt, j.runnerId, j.reason, j.exitCode);
  }

  async submit(n: NewJob, assign?: JobDecision): Promise<SubmitResult> {
    const key = n.spec.idempotencyKey ?? null;
    const run = (): SubmitResult => {
      if (key !== null) {
        const existing = this.byKey(n.project, key);
        if (existing) return { job: existing, created: false };
      }
      const { lastInsertRowid } = stmt(
        this.db,
        `INSERT INTO jobs (id, project, pool_id, state, spec, timeout_ms, retries, idempotency_key, version, created_at)
         VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, 1, ?)`,
      ).run(n.id, n.project, n.poolId, JSON.stringify(n.spec), n.timeoutMs, n.spec.retries, key, n.createdAt);
      // The row as just written (the column defaults spelled out): no read back.
      const created: JobRecord = {
        ...NEW_JOB_DEFAULTS,
        seq: Number(lastInsertRowid),
        id: n.id,
        project: n.project,
        poolId: n.poolId,
        poolName: n.poolName,
        spec: n.spec,
        timeoutMs: n.timeoutMs,
        retries: n.spec.retries,
        idempotencyKey: key,
        excluded: [],
        createdAt: n.createdAt,
      };
      this.insertEvent(created, n.createdAt);
      const assigned = assign ? this.apply(created, assign, n.createdAt) : null;
      return assigned ? { job: created, created: true, assigned } : { job: created, created: true };
    };
    try {
      return await this.group.run(run);
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
    const rows = stmt(
      this.db,
      `${SELECT_JOBS} WHERE j.pool_id = ? AND j.state = 'queued' AND j.seq > ? ORDER BY j.seq LIMIT ?`,
    ).all(poolId, afterSeq, limit) as JobSql[];
    return rows.map(job);
  }

  async poolsWithQueued(): Promise<number[]> {
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
    const rows = stmt(
      this.db,
      `${SELECT_JOBS} WHERE j.state = 'running' AND j.started_at + j.timeout_ms + ? <= ? ORDER BY j.seq`,
    ).all(graceMs, now) as JobSql[];
    return rows.map(job);
  }

  async transition(items: { jobId: string; decide: JobDecision }[], now: number): Promise<JobTransition[]> {
    if (items.length === 0) return [];
    return this.group.run((): JobTransition[] => {
        const done: JobTransition[] = [];
        for (const { jobId, decide } of items) {
          const before = this.getSync(jobId);
          const t = before && this.apply(before, decide, now);
          if (t) done.push(t);
        }
        return done;
      });
  }

  /** One decision on one job, inside the caller's transaction. */
  private apply(before: JobRecord, decide: JobDecision, now: number): JobTransition | null {
    const change = decide(before);
    if (!change) return null;
    const stateChanged = change.state !== undefined && change.state !== before.state;
    const after: JobRecord = { ...before, ...change, version: before.version + (stateChanged ? 1 : 0) };
    this.update(after, Object.keys(change) as (keyof JobChange)[]);
    if (stateChanged) this.insertEvent(after, now);
    return { before, after };
  }

  /**
   * Writes only the columns the change names (plus version): SQLite then
   * maintains only the indexes on those columns. One prepared statement per
   * column set, cached.
   */
  private update(after: JobRecord, keys: (keyof JobChange)[]): void {
    const cols = [...new Set(keys)].sort();
    const params: Record<string, unknown> = { id: after.id, version: after.version };
    for (const k of cols) params[k] = toSqlValue(k, after[k]);
    this.updateFor(cols).run(params);
  }

  /** The UPDATE for a column set, keyed by the set itself so a hot path builds no SQL text. */
  private updateFor(cols: (keyof JobChange)[]): Database.Statement {
    const key = cols.join(',');
    let prepared = this.updates.get(key);
    if (!prepared) {
      const sets = cols.map((k) => `${COLUMN[k]} = @${k}`);
      sets.push('version = @version');
      prepared = stmt(this.db, `UPDATE jobs SET ${sets.join(', ')} WHERE id = @id`);
      this.updates.set(key, prepared);
    }
    return prepared;
  }

  async events(jobId: string): Promise<JobEventRow[]> {
    const rows = stmt(this.db, 'SELECT * FROM job_events WHERE job_id = ? ORDER BY id').all(jobId) as {
      id: number;
      job_id: string;
      at: number;
      state: string;
      attempt: number;
      runner_id: string | null;
      reason: string | null;
      exit_code: number | null;
    }[];
    return rows.map((r) => ({
      id: r.id,
      jobId: r.job_id,
      at: r.at,
      state: r.state as JobState,
      attempt: r.attempt,
      runnerId: r.runner_id,
      reason: r.reason,
      exitCode: r.exit_code,
    }));
  }

  async appendLog(c: Omit<LogChunkRow, 'size'>, runnerId?: string): Promise<AppendLogResult> {
    return this.group.run((): AppendLogResult => {
        const j = stmt(this.db, 'SELECT attempt, runner_id, log_bytes FROM jobs WHERE id = ?').get(c.jobId) as
          | { attempt: number; runner_id: string | null; log_bytes: number }
          | undefined;
        // Fenced by attempt and runner: another runner knowing the job id must not write into its log.
        if (!j || j.attempt !== c.attempt || (runnerId !== undefined && j.runner_id !== runnerId)) return { kind: 'stale' };
        const size = Buffer.byteLength(c.data, 'utf8');
        if (c.offset < j.log_bytes) return { kind: 'stored', length: j.log_bytes, appended: false };
        if (c.offset > j.log_bytes) return { kind: 'gap', length: j.log_bytes };
        if (size === 0) return { kind: 'stored', length: j.log_bytes, appended: false };
        stmt(
          this.db,
          'INSERT INTO job_logs (job_id, attempt, byte_offset, size, stream, data) VALUES (?, ?, ?, ?, ?, ?)',
        ).run(c.jobId, c.attempt, c.offset, size, c.stream, c.data);
        stmt(this.db, 'UPDATE jobs SET log_bytes = ? WHERE id = ?').run(c.offset + size, c.jobId);
        return { kind: 'stored', length: c.offset + size, appended: true };
      });
  }

  async logs(jobId: string, attempt: number, fromOffset: number): Promise<LogChunkRow[]> {
    const rows = stmt(
      this.db,
      `SELECT byte_offset, size, stream, data FROM job_logs
       WHERE job_id = ? AND attempt = ? AND byte_offset + size > ? ORDER BY byte_offset`,
    ).all(jobId, attempt, fromOffset) as { byte_offset: number; size: number; stream: string; data: string }[];
    return rows.map((r) => ({ jobId, attempt, offset: r.byte_offset, size: r.size, stream: r.stream as LogStream, data: r.data }));
  }
}
