import type { HostedPoolSpec, HostedProvider, MemberState } from '@rbtk/protocol';
import type { AutoscaleState, ClaimSample } from '../hosted/sizing.js';
import type { NewAuditRow } from './rows.js';

/** A member of a hosted pool, as stored. `handle` is the provider's own (pid, container id). */
export interface MemberRow {
  id: string;
  poolId: number;
  runnerId: string | null;
  state: MemberState;
  provider: HostedProvider;
  handle: Record<string, unknown> | null;
  specHash: string;
  jobId: string | null;
  error: string | null;
  createdAt: number;
  stateChangedAt: number;
}

/** What autoscale carries across a restart: its state (null while the pool does not autoscale) and the recent claims. */
export interface AutoscaleRow {
  poolId: number;
  state: AutoscaleState | null;
  /** Pruned to the window and compacted (pushSample): a few entries. */
  samples: ClaimSample[];
}

export type MemberChange = Partial<Pick<MemberRow, 'runnerId' | 'state' | 'handle' | 'jobId' | 'error' | 'stateChangedAt'>>;

/*
 * Hosted pools: the spec lives on the pool row (hosted_spec), members in
 * pool_members. One statement per method; the reconcile loop is the only
 * writer of member rows besides the claim hooks, and both run in this process.
 */
export interface HostedStore {
  /** Every member of the pool, oldest first. */
  members(poolId: number): Promise<MemberRow[]>;
  /** Every member of every pool (adoption at start). */
  allMembers(): Promise<MemberRow[]>;
  insertMember(row: MemberRow): Promise<void>;
  /** Applies the change; the member after, or null when it is gone. */
  updateMember(id: string, change: MemberChange): Promise<MemberRow | null>;
  deleteMember(id: string): Promise<void>;
  countMembers(poolId: number): Promise<number>;
  /** Replaces the pool's spec with change(the spec as stored), in one transaction with its audit row; the new spec. A throw from change writes nothing. */
  updateSpec(poolId: number, change: (current: HostedPoolSpec) => HostedPoolSpec, now: number, audit: NewAuditRow): Promise<HostedPoolSpec>;
  /** Jobs of the pool waiting for a runner. */
  queuedJobs(poolId: number): Promise<number>;
  /** Counts a job admitted to the pool: a warm hit or a miss. */
  countClaim(poolId: number, hit: boolean): Promise<void>;
  /** The pool's warm hits and misses since it was created. */
  claimCounts(poolId: number): Promise<{ hits: number; misses: number }>;
  /** Every pool's saved autoscale row (loaded at start). */
  autoscaleRows(): Promise<AutoscaleRow[]>;
  /** Replaces the pool's autoscale row; a pool deleted meanwhile is left alone. */
  saveAutoscale(row: AutoscaleRow, now: number): Promise<void>;
  /** Runner ids of the pool holding an assigned or running job: members that must not be touched. */
  busyRunners(poolId: number): Promise<Map<string, string>>;
}
