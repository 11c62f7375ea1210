import type { HostedPoolSpec, Labels, PoolStatus, PoolType } from '@rbtk/protocol';
import type { NewAuditRow, NewPool, PoolRecord, RegistrationTokenRecord, RegistrationTokenRow } from '../rows.js';
import type { DeletePoolResult, PoolStore, RegistrationTokenStore } from '../store.js';
import { insertAuditRow } from './audit.js';
import { type Db, isUniqueViolation, stmt } from './db.js';
import { liveStatus } from './runners.js';

interface PoolSql {
  id: number;
  project: string;
  name: string;
  type: string;
  status: string;
  tags: string;
  airgapped: number;
  allow_non_airgapped_jobs: number;
  docker_network: string | null;
  hosted_spec: string | null;
  created_at: number;
  updated_at: number;
  online: number;
  draining: number;
  offline: number;
}

// Pools with their runner counts in one query, so a list is one round trip.
const SELECT_POOLS = `
  SELECT p.*,
    COALESCE(SUM(r.status = 'ONLINE'), 0) AS online,
    COALESCE(SUM(r.status = 'DRAINING'), 0) AS draining,
    COALESCE(SUM(r.status = 'OFFLINE'), 0) AS offline
  FROM pools p LEFT JOIN runners r ON r.pool_id = p.id`;

const pool = (r: PoolSql): PoolRecord => ({
  id: r.id,
  project: r.project,
  name: r.name,
  type: r.type as PoolType,
  status: r.status as PoolStatus,
  tags: JSON.parse(r.tags) as Labels,
  airgapped: r.airgapped === 1,
  allowNonAirgappedJobs: r.allow_non_airgapped_jobs === 1,
  dockerNetwork: r.docker_network,
  // Specs stored before autoscale, schedules and member labels existed read as without them.
  hostedSpec: r.hosted_spec === null ? null : ({ autoscale: false, schedule: null, labels: {}, ...JSON.parse(r.hosted_spec) } as HostedPoolSpec),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  counts: { online: r.online, draining: r.draining, offline: r.offline },
});

export class SqlitePoolStore implements PoolStore {
  constructor(private readonly db: Db) {}

  async list(project: string): Promise<PoolRecord[]> {
    const rows = stmt(this.db, `${SELECT_POOLS} WHERE p.project = ? GROUP BY p.id ORDER BY p.name`).all(project);
    return (rows as PoolSql[]).map(pool);
  }

  async get(project: string, name: string): Promise<PoolRecord | null> {
    return this.getSync(project, name);
  }

  private getSync(project: string, name: string): PoolRecord | null {
    const r = stmt(this.db, `${SELECT_POOLS} WHERE p.project = ? AND p.name = ? GROUP BY p.id`).get(project, name);
    return r ? pool(r as PoolSql) : null;
  }

  async create(p: NewPool, audit: NewAuditRow): Promise<PoolRecord | null> {
    try {
      return this.db.transaction(() => {
        stmt(
          this.db,
          `INSERT INTO pools (project, name, type, status, tags, airgapped, allow_non_airgapped_jobs, docker_network, hosted_spec, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          p.project,
          p.name,
          p.type,
          p.status,
          JSON.stringify(p.tags),
          p.airgapped ? 1 : 0,
          p.allowNonAirgappedJobs ? 1 : 0,
          p.dockerNetwork,
          p.hostedSpec ? JSON.stringify(p.hostedSpec) : null,
          p.createdAt,
          p.updatedAt,
        );
        insertAuditRow(this.db, audit);
        return this.getSync(p.project, p.name);
      })();
    } catch (err) {
      if (isUniqueViolation(err)) return null;
      throw err;
    }
  }

  async delete(project: string, name: string, audit: NewAuditRow): Promise<DeletePoolResult> {
    return this.db
      .transaction((): DeletePoolResult => {
        const p = this.getSync(project, name);
        if (!p) return { kind: 'not_found' };
        // A hosted pool's members are its runners: say so first (set the target to 0), and here, not before the
        // transaction, since a reconcile pass may create one meanwhile (its row would block the delete).
        const members = (stmt(this.db, 'SELECT COUNT(*) AS n FROM pool_members WHERE pool_id = ?').get(p.id) as { n: number }).n;
        if (members > 0) return { kind: 'hosted_members', members };
        const jobs = stmt(
          this.db,
          `SELECT COALESCE(SUM(state IN ('assigned', 'running')), 0) AS in_flight, COALESCE(SUM(state = 'queued'), 0) AS queued
           FROM jobs WHERE pool_id = ? AND state IN ('queued', 'assigned', 'running')`,
        ).get(p.id) as { in_flight: number; queued: number };
        if (p.counts.online > 0 || jobs.in_flight > 0) {
          return { kind: 'busy', onlineRunners: p.counts.online, jobsInFlight: jobs.in_flight };
        }
        // Jobs cascade with their pool: refuse rather than silently drop queued ones.
        if (jobs.queued > 0) return { kind: 'queued_jobs', jobs: jobs.queued };
        const runnerIds = (stmt(this.db, 'SELECT id FROM runners WHERE pool_id = ?').all(p.id) as { id: string }[]).map(
          (r) => r.id,
        );
        // Tokens first: runner_tokens.runner_id is SET NULL on delete, not cascaded.
        stmt(this.db, 'DELETE FROM runner_tokens WHERE runner_id IN (SELECT id FROM runners WHERE pool_id = ?)').run(p.id);
        stmt(this.db, 'DELETE FROM pools WHERE id = ?').run(p.id); // cascades runners, registration tokens
        insertAuditRow(this.db, audit);
        return { kind: 'deleted', runnerIds };
      })
      .immediate();
  }

  async setStatus(project: string, name: string, status: PoolStatus, now: number, audit: NewAuditRow): Promise<PoolRecord | null> {
    return this.db
      .transaction((): PoolRecord | null => {
        const p = this.getSync(project, name);
        if (!p) return null;
        stmt(this.db, 'UPDATE pools SET status = ?, updated_at = ? WHERE id = ?').run(status, now, p.id);
        // Its runners follow at once (a draining pool drains them all); OFFLINE ones when they come back.
        stmt(this.db, `UPDATE runners SET status = ${liveStatus()} WHERE pool_id = ? AND status != 'OFFLINE'`).run(p.id);
        insertAuditRow(this.db, audit);
        return this.getSync(project, name);
      })
      .immediate();
  }

  async heldIds(): Promise<number[]> {
    const rows = stmt(this.db, "SELECT id FROM pools WHERE status != 'active' ORDER BY id").all() as { id: number }[];
    return rows.map((r) => r.id);
  }
}

interface RegistrationTokenSql {
  id: string;
  pool_id: number;
  hash: string;
  expires_at: number;
  uses_left: number | null;
  created_by: string;
  created_at: number;
  pool_name: string;
  project: string;
  pool_airgapped: number;
}

export class SqliteRegistrationTokenStore implements RegistrationTokenStore {
  constructor(private readonly db: Db) {}

  async insert(row: RegistrationTokenRow, audit: NewAuditRow): Promise<void> {
    this.db.transaction(() => {
      stmt(
        this.db,
        `INSERT INTO registration_tokens (id, pool_id, hash, expires_at, uses_left, created_by, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ).run(row.id, row.poolId, row.hash, row.expiresAt, row.usesLeft, row.createdBy, row.createdAt);
      insertAuditRow(this.db, audit);
    })();
  }

  async get(id: string): Promise<RegistrationTokenRecord | null> {
    const r = stmt(
      this.db,
      `SELECT t.*, p.name AS pool_name, p.project AS project, p.airgapped AS pool_airgapped
       FROM registration_tokens t JOIN pools p ON p.id = t.pool_id WHERE t.id = ?`,
    ).get(id) as RegistrationTokenSql | undefined;
    if (!r) return null;
    return {
      id: r.id,
      poolId: r.pool_id,
      hash: r.hash,
      expiresAt: r.expires_at,
      usesLeft: r.uses_left,
      createdBy: r.created_by,
      createdAt: r.created_at,
      poolName: r.pool_name,
      project: r.project,
      poolAirgapped: r.pool_airgapped === 1,
    };
  }
}
