import type { HostedPoolSpec, HostedProvider, MemberState } from '@rbtk/protocol';
import type { AutoscaleRow, HostedStore, MemberChange, MemberRow } from '../hosted-store.js';
import type { NewAuditRow } from '../rows.js';
import { insertAuditRow } from './audit.js';
import { type Db, fromJson, stmt, toJson } from './db.js';

interface MemberSql {
  id: string;
  pool_id: number;
  runner_id: string | null;
  state: string;
  provider: string;
  handle: string | null;
  spec_hash: string;
  job_id: string | null;
  error: string | null;
  created_at: number;
  state_changed_at: number;
}

const member = (r: MemberSql): MemberRow => ({
  id: r.id,
  poolId: r.pool_id,
  runnerId: r.runner_id,
  state: r.state as MemberState,
  provider: r.provider as HostedProvider,
  handle: fromJson<Record<string, unknown>>(r.handle),
  specHash: r.spec_hash,
  jobId: r.job_id,
  error: r.error,
  createdAt: r.created_at,
  stateChangedAt: r.state_changed_at,
});

interface AutoscaleSql {
  pool_id: number;
  target: number | null;
  below_since: number | null;
  highest_below: number;
  samples: string;
}

const autoscale = (r: AutoscaleSql): AutoscaleRow => ({
  poolId: r.pool_id,
  state: r.target === null ? null : { target: r.target, belowSince: r.below_since, highestBelow: r.highest_below },
  samples: (JSON.parse(r.samples) as [number, number][]).map(([at, claimed]) => ({ at, claimed })),
});

const COLUMNS: Record<keyof MemberChange, string> = {
  runnerId: 'runner_id',
  state: 'state',
  handle: 'handle',
  jobId: 'job_id',
  error: 'error',
  stateChangedAt: 'state_changed_at',
};

export class SqliteHostedStore implements HostedStore {
  constructor(private readonly db: Db) {}

  async members(poolId: number): Promise<MemberRow[]> {
    return (stmt(this.db, 'SELECT * FROM pool_members WHERE pool_id = ? ORDER BY created_at, id').all(poolId) as MemberSql[]).map(member);
  }

  async allMembers(): Promise<MemberRow[]> {
    return (stmt(this.db, 'SELECT * FROM pool_members ORDER BY pool_id, created_at, id').all() as MemberSql[]).map(member);
  }

  async insertMember(m: MemberRow): Promise<void> {
    stmt(
      this.db,
      `INSERT INTO pool_members (id, pool_id, runner_id, state, provider, handle, spec_hash, job_id, error, created_at, state_changed_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(m.id, m.poolId, m.runnerId, m.state, m.provider, toJson(m.handle), m.specHash, m.jobId, m.error, m.createdAt, m.stateChangedAt);
  }

  async updateMember(id: string, change: MemberChange): Promise<MemberRow | null> {
    const keys = Object.keys(change) as (keyof MemberChange)[];
    if (keys.length > 0) {
      const sets = keys.map((k) => `${COLUMNS[k]} = @${k}`).join(', ');
      const values: Record<string, unknown> = { id };
      for (const k of keys) values[k] = k === 'handle' ? toJson(change.handle) : change[k];
      stmt(this.db, `UPDATE pool_members SET ${sets} WHERE id = @id`).run(values);
    }
    const r = stmt(this.db, 'SELECT * FROM pool_members WHERE id = ?').get(id) as MemberSql | undefined;
    return r ? member(r) : null;
  }

  async deleteMember(id: string): Promise<void> {
    stmt(this.db, 'DELETE FROM pool_members WHERE id = ?').run(id);
  }

  async countMembers(poolId: number): Promise<number> {
    return (stmt(this.db, 'SELECT COUNT(*) AS n FROM pool_members WHERE pool_id = ?').get(poolId) as { n: number }).n;
  }

  async updateSpec(poolId: number, change: (current: HostedPoolSpec) => HostedPoolSpec, now: number, audit: NewAuditRow): Promise<HostedPoolSpec> {
    return this.db.transaction(() => {
      // Read again here: a concurrent update committed since the caller looked is merged, not lost.
      const row = stmt(this.db, 'SELECT hosted_spec FROM pools WHERE id = ?').get(poolId) as { hosted_spec: string | null } | undefined;
      if (!row?.hosted_spec) throw new Error(`pool ${poolId} has no hosted spec`);
      const spec = change({ autoscale: false, schedule: null, labels: {}, ...JSON.parse(row.hosted_spec) } as HostedPoolSpec);
      stmt(this.db, 'UPDATE pools SET hosted_spec = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(spec), now, poolId);
      insertAuditRow(this.db, audit);
      return spec;
    })();
  }

  async queuedJobs(poolId: number): Promise<number> {
    return (stmt(this.db, "SELECT COUNT(*) AS n FROM jobs WHERE pool_id = ? AND state = 'queued'").get(poolId) as { n: number }).n;
  }

  async countClaim(poolId: number, hit: boolean): Promise<void> {
    stmt(this.db, `UPDATE pools SET ${hit ? 'warm_hits = warm_hits + 1' : 'warm_misses = warm_misses + 1'} WHERE id = ?`).run(poolId);
  }

  async claimCounts(poolId: number): Promise<{ hits: number; misses: number }> {
    const r = stmt(this.db, 'SELECT warm_hits AS hits, warm_misses AS misses FROM pools WHERE id = ?').get(poolId) as
      | { hits: number; misses: number }
      | undefined;
    return r ?? { hits: 0, misses: 0 };
  }

  async autoscaleRows(): Promise<AutoscaleRow[]> {
    return (stmt(this.db, 'SELECT * FROM pool_autoscale ORDER BY pool_id').all() as AutoscaleSql[]).map(autoscale);
  }

  async saveAutoscale(row: AutoscaleRow, now: number): Promise<void> {
    // INSERT ... SELECT: a pass that ends after its pool was deleted writes nothing (rather than failing on the foreign key).
    stmt(
      this.db,
      `INSERT INTO pool_autoscale (pool_id, target, below_since, highest_below, samples, updated_at)
       SELECT @poolId, @target, @belowSince, @highestBelow, @samples, @now WHERE EXISTS (SELECT 1 FROM pools WHERE id = @poolId)
       ON CONFLICT (pool_id) DO UPDATE SET target = excluded.target, below_since = excluded.below_since,
         highest_below = excluded.highest_below, samples = excluded.samples, updated_at = excluded.updated_at`,
    ).run({
      poolId: row.poolId,
      target: row.state?.target ?? null,
      belowSince: row.state?.belowSince ?? null,
      highestBelow: row.state?.highestBelow ?? 0,
      samples: JSON.stringify(row.samples.map((x) => [x.at, x.claimed])),
      now,
    });
  }

  async busyRunners(poolId: number): Promise<Map<string, string>> {
    const rows = stmt(
      this.db,
      "SELECT runner_id, id FROM jobs WHERE pool_id = ? AND state IN ('assigned', 'running') AND runner_id IS NOT NULL",
    ).all(poolId) as { runner_id: string; id: string }[];
    return new Map(rows.map((r) => [r.runner_id, r.id]));
  }
}
