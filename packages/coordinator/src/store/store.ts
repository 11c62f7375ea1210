import type { AuditResourceType, Capabilities, HostFacts, Labels, PoolStatus, RunnerStatus } from '@rbtk/protocol';
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
import type { HostedStore } from './hosted-store.js';
import type { JobStore } from './job-store.js';
import type { StatsStore } from './stats-store.js';

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

export interface ApiTokenFilter {
  project: string;
  /** Include the instance-wide tokens (no project): for the instance admin's eyes only. */
  instanceWide: boolean;
}

export type RevokeApiTokenResult =
  | { kind: 'revoked'; token: ApiTokenRow }
  | { kind: 'not_found' }
  | { kind: 'already_revoked'; token: ApiTokenRow }
  /** It is the last instance admin token neither revoked nor expired: revoking it would lock everyone out. */
  | { kind: 'last_instance_admin' };

export interface ApiTokenStore {
  insert(row: ApiTokenRow, audit?: NewAuditRow): Promise<void>;
  /** Revoked tokens too (tombstones). */
  get(id: string): Promise<ApiTokenRow | null>;
  /** Tokens not revoked (expired ones included), oldest first. */
  list(filter: ApiTokenFilter): Promise<ApiTokenRow[]>;
  /** Records a use. Not durable: a use lost to a crash costs a minute of "last used", not a write per request. */
  touch(id: string, now: number): Promise<void>;
  /**
   * Revokes the token, with its audit row, in one transaction. `project`: only a token of that
   * project may be revoked (a project admin); null: any (the instance admin).
   */
  revoke(id: string, project: string | null, now: number, audit: (token: ApiTokenRow) => NewAuditRow): Promise<RevokeApiTokenResult>;
  /** True when an instance admin token (admin, no project) exists that is neither revoked nor expired at `now`. */
  hasInstanceAdmin(now: number): Promise<boolean>;
}

export type DeletePoolResult =
  | { kind: 'deleted'; runnerIds: string[] }
  | { kind: 'not_found' }
  | { kind: 'busy'; onlineRunners: number; jobsInFlight: number }
  | { kind: 'queued_jobs'; jobs: number }
  /** A hosted pool with members left (checked in the delete's transaction: a pass may have just made one). */
  | { kind: 'hosted_members'; members: number };

export interface PoolStore {
  list(project: string): Promise<PoolRecord[]>;
  get(project: string, name: string): Promise<PoolRecord | null>;
  /** null when the name is taken in that project. */
  create(pool: NewPool, audit: NewAuditRow): Promise<PoolRecord | null>;
  /**
   * Refused while the pool has ONLINE runners or jobs in flight (assigned, running), or
   * queued jobs; deletes its other runners and its tokens.
   */
  delete(project: string, name: string, audit: NewAuditRow): Promise<DeletePoolResult>;
  /** active, paused (jobs queue, none start) or draining (its runners take no new jobs); the pool after. */
  setStatus(project: string, name: string, status: PoolStatus, now: number, audit: NewAuditRow): Promise<PoolRecord | null>;
  /** Ids of the pools, in every project, whose queued jobs must not start: paused or draining. */
  heldIds(): Promise<number[]>;
}

export interface RegistrationTokenStore {
  insert(row: RegistrationTokenRow, audit: NewAuditRow): Promise<void>;
  get(id: string): Promise<RegistrationTokenRecord | null>;
}

export interface RegisterInput {
  /** null: the coordinator registers the runner itself (a hosted pool's member); no token is consumed. */
  registrationTokenId: string | null;
  now: number;
  runner: RunnerRow;
  token: RunnerTokenRow;
  audit: NewAuditRow;
  /** The client's id for this registration (RegisterRequest.registrationId); null or absent: none. */
  registrationId?: string | null;
}

/**
 * Why a registration that looked valid was refused inside the transaction.
 * duplicate: a runner with this registration id and token already exists (a
 * concurrent request made it first); nothing was written: answer it as the retry.
 */
export type RegisterResult = 'registered' | 'duplicate' | 'unknown' | 'expired' | 'used_up';

export interface RetryRegistrationInput {
  registrationTokenId: string;
  poolId: number;
  registrationId: string;
  /** A registration made at or before this is past its retry window. */
  registeredAfter: number;
  /** The runner's fresh first token; its runnerId is the runner found. */
  token: Omit<RunnerTokenRow, 'runnerId'>;
  audit: (runner: RunnerRecord) => NewAuditRow;
}

/**
 * none: no runner has this registration id (a new registration).
 * retried: the runner never connected; its first token was replaced by the fresh one, with the audit row.
 * connected: the runner has said hello since; stale: the registration is past its window. Both change nothing.
 */
export type RetryRegistrationResult =
  | { result: 'none' }
  | { result: 'retried' | 'connected' | 'stale'; runner: RunnerRecord };

export interface HelloInput {
  agentVersion: string;
  host: HostFacts;
  capabilities: Capabilities;
  labels: Labels;
  /** The runner's own drain reason from hello, or null. */
  selfDrain: string | null;
}

export interface RunnerStore {
  list(project: string, poolName?: string): Promise<RunnerRecord[]>;
  get(id: string): Promise<RunnerRecord | null>;
  /** Consumes one use of the registration token and creates the runner with its first token. */
  register(input: RegisterInput): Promise<RegisterResult>;
  /** A register request repeating a registration id: finds its runner and, if it never connected, re-mints its token. */
  retryRegistration(input: RetryRegistrationInput): Promise<RetryRegistrationResult>;
  /** hello: records what the runner reported and counts as a heartbeat. */
  recordHello(id: string, hello: HelloInput, now: number): Promise<RunnerRecord | null>;
  /** Sets last_heartbeat_at and status ONLINE (DRAINING while draining); the status set, null when the runner is gone. */
  recordHeartbeat(id: string, now: number): Promise<RunnerStatus | null>;
  /**
   * The runner's own drain (its drain frame): sets self_drain and the status, with
   * the audit row, when it changed; answers the runner after (null when gone).
   */
  recordDrain(id: string, selfDrain: string | null, audit: (runner: RunnerRecord) => NewAuditRow): Promise<RunnerRecord | null>;
  /** An operator's drain or resume, kept across reconnects, with its audit row; the runner after. */
  setDraining(id: string, draining: boolean, audit: (runner: RunnerRecord) => NewAuditRow): Promise<RunnerRecord | null>;
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
  /**
   * Adds a pending token, dropping the oldest pendings beyond maxPending;
   * undefined: none dropped, for a caller that knows the runner has no other.
   */
  addPending(row: RunnerTokenRow, maxPending: number | undefined): Promise<void>;
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
  readonly stats: StatsStore;
  readonly hosted: HostedStore;
  /** Throws when the database does not answer (readiness). */
  ping(): Promise<void>;
  /** Safe to call twice. */
  close(): Promise<void>;
}
