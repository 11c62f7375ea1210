import type { Capabilities, HostFacts, Labels, PoolStatus, RunnerStatus } from '@rbtk/protocol';
import type { NewAuditRow, RunnerRecord } from '../rows.js';
import type {
  HelloInput,
  RegisterInput,
  RegisterResult,
  RetryRegistrationInput,
  RetryRegistrationResult,
  RunnerStore,
} from '../store.js';
import { insertAuditRow } from './audit.js';
import { type Db, fromJson, stmt, toJson } from './db.js';
import type { GroupCommit } from './group-commit.js';
import { insertRegistration, retryRegistration } from './runner-registration.js';

interface RunnerSql {
  id: string;
  pool_id: number;
  name: string;
  labels: string;
  airgapped: number;
  status: string;
  draining: number;
  agent_version: string | null;
  host: string | null;
  capabilities: string | null;
  registration_token_id: string | null;
  registered_at: number;
  last_heartbeat_at: number | null;
  self_drain: string | null;
  pool_name: string;
  pool_status: string;
  project: string;
  pool_docker_network: string | null;
}

const SELECT_RUNNERS = `
  SELECT r.*, p.name AS pool_name, p.project AS project, p.docker_network AS pool_docker_network, p.status AS pool_status
  FROM runners r JOIN pools p ON p.id = r.pool_id`;

/** When a runner last spoke: its last heartbeat, or its registration if it never did. */
const SILENT_SINCE = 'COALESCE(r.last_heartbeat_at, r.registered_at)';

/**
 * hello, heartbeats and drains put the runner ONLINE, or DRAINING while an
 * operator drained it, it drains itself, or its pool drains. The arguments
 * name the values to judge by: a SET clause reads the row as it was.
 */
export const liveStatus = (draining = 'draining', selfDrain = 'self_drain'): string =>
  `CASE WHEN ${draining} = 1 OR ${selfDrain} IS NOT NULL
     OR (SELECT status FROM pools WHERE pools.id = runners.pool_id) = 'draining'
   THEN 'DRAINING' ELSE 'ONLINE' END`;
const LIVE_STATUS = liveStatus();
/** A runner OFFLINE stays so until it heartbeats; otherwise as liveStatus(). */
const keepOffline = (live: string) => `CASE WHEN status = 'OFFLINE' THEN 'OFFLINE' ELSE ${live} END`;

const runner = (r: RunnerSql): RunnerRecord => ({
  id: r.id,
  poolId: r.pool_id,
  name: r.name,
  labels: JSON.parse(r.labels) as Labels,
  airgapped: r.airgapped === 1,
  status: r.status as RunnerStatus,
  draining: r.draining === 1,
  agentVersion: r.agent_version,
  host: fromJson<HostFacts>(r.host),
  capabilities: fromJson<Capabilities>(r.capabilities),
  registrationTokenId: r.registration_token_id,
  registeredAt: r.registered_at,
  lastHeartbeatAt: r.last_heartbeat_at,
  poolName: r.pool_name,
  project: r.project,
  poolDockerNetwork: r.pool_docker_network,
  poolStatus: r.pool_status as PoolStatus,
  selfDrain: r.self_drain,
});

export class SqliteRunnerStore implements RunnerStore {
  /**
   * `sessionWrites`: the group commit heartbeats share with token rotation
   * (SqliteRunnerTokenStore), so a heartbeat and the pending token it issues
   * are one transaction; heartbeats do not wait for its fsync (see recordHeartbeat).
   */
  constructor(
    private readonly db: Db,
    private readonly sessionWrites: GroupCommit,
  ) {}

  private getSync(id: string): RunnerRecord | null {
    const r = stmt(this.db, `${SELECT_RUNNERS} WHERE r.id = ?`).get(id) as RunnerSql | undefined;
    return r ? runner(r) : null;
  }

  async list(project: string, poolName?: string): Promise<RunnerRecord[]> {
    const rows = stmt(
      this.db,
      `${SELECT_RUNNERS} WHERE p.project = @project AND (@pool IS NULL OR p.name = @pool) ORDER BY p.name, r.name, r.id`,
    ).all({ project, pool: poolName ?? null }) as RunnerSql[];
    return rows.map(runner);
  }

  async get(id: string): Promise<RunnerRecord | null> {
    return this.getSync(id);
  }

  async register(input: RegisterInput): Promise<RegisterResult> {
    return insertRegistration(this.db, input);
  }

  async retryRegistration(input: RetryRegistrationInput): Promise<RetryRegistrationResult> {
    return retryRegistration(this.db, input, (id) => this.getSync(id));
  }

  /**
   * Like a heartbeat, a hello is batched with the turn's other session writes
   * and waits for no fsync: what it records (capabilities, labels, the
   * runner's own drain) the runner says again at its next hello, and a
   * reconnect storm of 10,000 runners cost 10,000 fsyncs on the event loop.
   */
  async recordHello(id: string, hello: HelloInput, now: number): Promise<RunnerRecord | null> {
    return this.sessionWrites.run(
      () => {
        stmt(
          this.db,
          `UPDATE runners SET agent_version = @agentVersion, host = @host, capabilities = @capabilities, labels = @labels,
             last_heartbeat_at = @now, self_drain = @selfDrain, status = ${liveStatus('draining', '@selfDrain')} WHERE id = @id`,
        ).run({
          agentVersion: hello.agentVersion,
          host: toJson(hello.host),
          capabilities: toJson(hello.capabilities),
          labels: JSON.stringify(hello.labels),
          now,
          selfDrain: hello.selfDrain,
          id,
        });
        return this.getSync(id);
      },
      { durable: false },
    );
  }

  async recordDrain(id: string, selfDrain: string | null, audit: (runner: RunnerRecord) => NewAuditRow): Promise<RunnerRecord | null> {
    return this.db
      .transaction((): RunnerRecord | null => {
        const found = this.getSync(id);
        if (!found || found.selfDrain === selfDrain) return found;
        stmt(
          this.db,
          `UPDATE runners SET self_drain = @selfDrain, status = ${keepOffline(liveStatus('draining', '@selfDrain'))} WHERE id = @id`,
        ).run({ selfDrain, id });
        insertAuditRow(this.db, audit(found));
        return this.getSync(id);
      })
      .immediate();
  }

  async setDraining(id: string, draining: boolean, audit: (runner: RunnerRecord) => NewAuditRow): Promise<RunnerRecord | null> {
    return this.db
      .transaction((): RunnerRecord | null => {
        const found = this.getSync(id);
        if (!found) return null;
        stmt(
          this.db,
          `UPDATE runners SET draining = @draining, status = ${keepOffline(liveStatus('@draining'))} WHERE id = @id`,
        ).run({ draining: draining ? 1 : 0, id });
        insertAuditRow(this.db, audit(found));
        return this.getSync(id);
      })
      .immediate();
  }

  /**
   * The heartbeats of one event-loop turn are written in one transaction, and
   * without an fsync of their own (synchronous=NORMAL for it): at 10,000
   * runners an fsync per heartbeat held the event loop for most of the time.
   * A heartbeat needs no power-loss durability: one lost in a power cut only
   * leaves an older last_heartbeat_at, which the runner's next heartbeat or
   * hello rewrites, and the next fsynced commit of anything else makes it
   * durable anyway. It survives a crash of the process (it is in the WAL), and
   * the caller hears back only once it is written.
   */
  async recordHeartbeat(id: string, now: number): Promise<RunnerStatus | null> {
    return this.sessionWrites.run(
      () => {
        // The status alone, from the row just written: a heartbeat needs nothing else, and reading the whole
        // runner back (its pool joined, its host facts and capabilities parsed) cost more than the UPDATE.
        const status = stmt(this.db, `UPDATE runners SET last_heartbeat_at = ?, status = ${LIVE_STATUS} WHERE id = ? RETURNING status`)
          .pluck()
          .get(now, id) as RunnerStatus | undefined;
        return status ?? null;
      },
      { durable: false },
    );
  }

  async markOffline(before: number): Promise<string[]> {
    const rows = stmt(
      this.db,
      `UPDATE runners AS r SET status = 'OFFLINE' WHERE status != 'OFFLINE' AND ${SILENT_SINCE} <= ? RETURNING id`,
    ).all(before) as { id: string }[];
    return rows.map((r) => r.id);
  }

  async listSilent(before: number): Promise<RunnerRecord[]> {
    const rows = stmt(this.db, `${SELECT_RUNNERS} WHERE ${SILENT_SINCE} <= ? ORDER BY r.id`).all(before) as RunnerSql[];
    return rows.map(runner);
  }

  async reap(id: string, before: number, audit: NewAuditRow): Promise<boolean> {
    return this.db
      .transaction((): boolean => {
        const still = stmt(this.db, `SELECT 1 FROM runners r WHERE r.id = ? AND ${SILENT_SINCE} <= ?`).get(id, before);
        if (!still) return false;
        stmt(this.db, 'DELETE FROM runner_tokens WHERE runner_id = ?').run(id);
        stmt(this.db, 'DELETE FROM runners WHERE id = ?').run(id);
        insertAuditRow(this.db, audit);
        return true;
      })
      .immediate();
  }

  async revoke(id: string, now: number, audit: (runner: RunnerRecord) => NewAuditRow): Promise<RunnerRecord | null> {
    return this.db
      .transaction((): RunnerRecord | null => {
        const found = this.getSync(id);
        if (!found) return null;
        // Tombstones: these tokens must answer token_revoked, not token_unknown, from now on.
        stmt(this.db, "UPDATE runner_tokens SET state = 'revoked', revoked_at = ? WHERE runner_id = ?").run(now, id);
        stmt(this.db, 'DELETE FROM runners WHERE id = ?').run(id);
        insertAuditRow(this.db, audit(found));
        return found;
      })
      .immediate();
  }
}
