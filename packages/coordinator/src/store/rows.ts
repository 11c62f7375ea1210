import type { ApiTokenRole, AuditResourceType, Labels, PoolStatus, PoolType, RunnerStatus } from '@rbtk/protocol';
import type { Capabilities, HostedPoolSpec, HostFacts } from '@rbtk/protocol';

/*
 * What the store hands back. These are storage records, not wire types: times
 * are epoch milliseconds, secrets appear only as hashes, and pools are known by
 * their numeric id. src/wire.ts turns them into protocol types, in one place.
 */

export interface ProjectRow {
  name: string;
  createdAt: number;
}

export interface ApiTokenRow {
  id: string;
  /** sha256 of the secret, hex. */
  hash: string;
  role: ApiTokenRole;
  /** null for an instance admin token, which may act on every project. */
  project: string | null;
  name: string | null;
  createdAt: number;
  /** null: valid until revoked. */
  expiresAt: number | null;
  /** Last authenticated use, written at most once a minute (API_TOKEN_TOUCH_MS); null: never. */
  lastUsedAt: number | null;
  /** Revoked rows stay as tombstones, so the token answers token_revoked rather than unknown. */
  revokedAt: number | null;
}

export interface PoolRow {
  id: number;
  project: string;
  name: string;
  type: PoolType;
  status: PoolStatus;
  tags: Labels;
  airgapped: boolean;
  allowNonAirgappedJobs: boolean;
  dockerNetwork: string | null;
  /** A hosted pool's spec; null (or absent on create) for self-hosted pools. */
  hostedSpec?: HostedPoolSpec | null;
  createdAt: number;
  updatedAt: number;
}

export interface RunnerCountsRow {
  online: number;
  draining: number;
  offline: number;
}

/** A pool with how many of its runners are in each status. */
export interface PoolRecord extends PoolRow {
  counts: RunnerCountsRow;
}

export type NewPool = Omit<PoolRow, 'id'>;

export interface RegistrationTokenRow {
  id: string;
  poolId: number;
  hash: string;
  expiresAt: number;
  /** null: unlimited until it expires. */
  usesLeft: number | null;
  createdBy: string;
  createdAt: number;
}

/** A registration token with the pool it admits runners into. */
export interface RegistrationTokenRecord extends RegistrationTokenRow {
  poolName: string;
  project: string;
  poolAirgapped: boolean;
}

export interface RunnerRow {
  id: string;
  poolId: number;
  name: string;
  labels: Labels;
  airgapped: boolean;
  status: RunnerStatus;
  /** Set by an operator's drain (rbtk runner drain); hello and heartbeats then report DRAINING instead of ONLINE. */
  draining: boolean;
  agentVersion: string | null;
  host: HostFacts | null;
  capabilities: Capabilities | null;
  registrationTokenId: string | null;
  registeredAt: number;
  lastHeartbeatAt: number | null;
}

/** A runner with the names of its pool and project. */
export interface RunnerRecord extends RunnerRow {
  poolName: string;
  project: string;
  /** The pool's container network (welcome tells the runner); null: none. */
  poolDockerNetwork: string | null;
  /** active, paused or draining: a draining pool drains all its runners. */
  poolStatus: PoolStatus;
  /** Why the runner drains itself (its hello or drain frame), or null. */
  selfDrain: string | null;
}

/**
 * current: the token the runner uses. pending: minted by a rotation, not yet
 * confirmed. superseded: replaced; presenting it again means it was stolen.
 * revoked: tombstone of a revoked runner's token, so it answers token_revoked.
 */
export type RunnerTokenState = 'current' | 'pending' | 'superseded' | 'revoked';

export interface RunnerTokenRow {
  id: string;
  /** null once the runner is gone (revoked tombstones outlive their runner). */
  runnerId: string | null;
  hash: string;
  state: RunnerTokenState;
  createdAt: number;
}

export interface AuditRow {
  id: number;
  at: number;
  actor: string;
  action: string;
  resourceType: AuditResourceType;
  resourceId: string;
  project: string | null;
  details: Record<string, unknown>;
}

export type NewAuditRow = Omit<AuditRow, 'id'>;
