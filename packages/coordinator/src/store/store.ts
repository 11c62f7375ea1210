import type { AuditResourceType, Capabilities, HostFacts, Labels } from '@rbtk/protocol';
import type {
  ApiTokenRow,
  AuditRow,
  NewAuditRow,
  NewPool,
  PoolRecord,
  ProjectRow,
  RegistrationTokenRecord,
  RegistrationTokenRow,
  RunnerRecord,
  RunnerRow,
  RunnerTokenRow,
} from './rows.js';
import type { JobStore } from './job-store.js';

/*
 * The coordinator's storage, one interface per resource. Every method is async
 * so that a PostgreSQL implementation fits behind it; SQLite answers at once.
 * Methods that change several rows (registration, token promotion, revoke,
 * pool delete) are one transaction each, audit row included.
 */

export interface ProjectStore {
  list(): Promise<ProjectRow[]>;
  get(name: string): Promise<ProjectRow | null>;
  /** false when a project of that name exists already. */
  create(row: ProjectRow, audit?: NewAuditRow): Promise<boolean>;
}

export interface ApiTokenStore {
  insert(row: ApiTokenRow, audit?: NewAuditRow): Promise<void>;
  get(id: string): Promise<ApiTokenRow | null>;
  /** True when an admin token with no project (the instance admin) exists. */
  hasInstanceAdmin(): Promise<boolean>;
}

export type DeletePoolResult =
  | { kind: 'deleted'; runnerIds: string[] }
  | { kind: 'not_found' }
  | { kind: 'busy'; activeRunners: number }
  | { kind: 'unfinished_jobs'; jobs: number };

export interface PoolStore {
  list(project: string): Promise<PoolRecord[]>;
  get(project: string, name: string): Promise<PoolRecord | null>;
  /** null when the name is taken in that project. */
  create(pool: NewPool, audit: NewAuditRow): Promise<PoolRecord | null>;
  /** Refused while the pool has ONLINE or DRAINING runners; deletes its offline runners and tokens. */
  delete(project: string, name: string, audit: NewAuditRow): Promise<DeletePoolResult>;
}

export interface RegistrationTokenStore {
  insert(row: RegistrationTokenRow, audit: NewAuditRow): Promise<void>;
  get(id: string): Promise<RegistrationTokenRecord | null>;
}

export interface RegisterInput {
  registrationTokenId: string;
  now: number;
  runner: RunnerRow;
  token: RunnerTokenRow;
  audit: NewAuditRow;
}

/** Why a registration that looked valid was refused inside the transaction. */
export type RegisterResult = 'registered' | 'unknown' | 'expired' | 'used_up';

export interface HelloInput {
  agentVersion: string;
  host: HostFacts;
  capabilities: Capabilities;
  labels: Labels;
}

export interface RunnerStore {
  list(project: string, poolName?: string): Promise<RunnerRecord[]>;
  get(id: string): Promise<RunnerRecord | null>;
  /** Consumes one use of the registration token and creates the runner with its first token. */
  register(input: RegisterInput): Promise<RegisterResult>;
  /** hello: records what the runner reported and counts as a heartbeat. */
  recordHello(id: string, hello: HelloInput, now: number): Promise<RunnerRecord | null>;
  /** Sets last_heartbeat_at and status ONLINE (DRAINING while draining). */
  recordHeartbeat(id: string, now: number): Promise<RunnerRecord | null>;
  /** Marks OFFLINE every runner whose last heartbeat is at or before `before`; returns their ids. */
  markOffline(before: number): Promise<string[]>;
  /** Runners silent (no heartbeat, or never one since registration) since at or before `before`. */
  listSilent(before: number): Promise<RunnerRecord[]>;
  /** Deletes a runner and its tokens if it is still silent since `before`; false if it spoke meanwhile. */
  reap(id: string, before: number, audit: NewAuditRow): Promise<boolean>;
  /** Deletes the runner, leaves its tokens as revoked tombstones; returns it as last seen. */
  revoke(id: string, now: number, audit: (runner: RunnerRecord) => NewAuditRow): Promise<RunnerRecord | null>;
}

export interface RunnerTokenStore {
  get(id: string): Promise<RunnerTokenRow | null>;
  current(runnerId: string): Promise<RunnerTokenRow | null>;
  /** Adds a pending token, dropping the oldest pendings beyond maxPending. */
  addPending(row: RunnerTokenRow, maxPending: number): Promise<void>;
  /**
   * Pending token -> current, current -> superseded, other pendings deleted,
   * superseded rows beyond keepSuperseded deleted. false when tokenId is not a
   * pending token of that runner.
   */
  promote(runnerId: string, tokenId: string, keepSuperseded: number): Promise<boolean>;
  /** Deletes revoked tombstones older than `before`. */
  pruneRevoked(before: number): Promise<number>;
}

export interface AuditFilter {
  project: string;
  resourceType?: AuditResourceType;
  limit: number;
}

export interface AuditStore {
  insert(row: NewAuditRow): Promise<AuditRow>;
  /** The latest `limit` rows matching, ascending by id. */
  list(filter: AuditFilter): Promise<AuditRow[]>;
}

export interface Store {
  readonly projects: ProjectStore;
  readonly apiTokens: ApiTokenStore;
  readonly pools: PoolStore;
  readonly registrationTokens: RegistrationTokenStore;
  readonly runners: RunnerStore;
  readonly runnerTokens: RunnerTokenStore;
  readonly audit: AuditStore;
  readonly jobs: JobStore;
  /** Throws when the database does not answer (readiness). */
  ping(): Promise<void>;
  /** Safe to call twice. */
  close(): Promise<void>;
}
