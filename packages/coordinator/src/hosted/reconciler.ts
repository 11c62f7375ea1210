import { type HostedPoolSpec, type MemberState, parseDuration } from '@rbtk/protocol';

/** A member as one reconcile pass sees it. */
export interface PlanMember {
  id: string;
  state: MemberState;
  specHash: string;
  createdAt: number;
  stateChangedAt: number;
  /** Holds a job (assigned or running, or reserved by a claim that is committing): never touched. */
  busy: boolean;
}

export interface PlanInput {
  spec: HostedPoolSpec;
  /** The hash members of the current spec carry. */
  specHash: string;
  members: PlanMember[];
  now: number;
  /** Jobs of the pool waiting for a member (overflow cold-starts one for each, up to max). */
  queuedJobs: number;
  /** A draining pool: ready members go, nothing is replenished. */
  draining: boolean;
  /** The target this pass sizes to (autoscale or a schedule may override spec.target). */
  target?: number;
}

export type RemoveReason = 'errored' | 'warming_timeout' | 'ready_ttl' | 'outdated' | 'excess' | 'drain';

export interface ReconcilePlan {
  remove: { id: string; reason: RemoveReason }[];
  /** Members to create now (at most one batch). */
  create: number;
  /** Why they are created: the target, or overflow for queued jobs. */
  createReason: 'target' | 'overflow';
}

/** Most members one pass creates; the next pass (at once, since it was cut short) creates more. */
export const CREATE_BATCH = 8;

/**
 * One reconcile pass, decided from a snapshot, in this order: remove errored
 * members; recycle members stuck warming past warmingTimeout and ready ones
 * idle past readyTtl; replace members of an outdated spec; create what is
 * missing up to the target (in a batch); remove the excess, oldest idle
 * first. A busy member is never touched. Pure: the clock is an input.
 */
export function planReconcile(input: PlanInput): ReconcilePlan {
  const { spec, now } = input;
  const warmingTimeout = parseDuration(spec.warmingTimeout);
  const readyTtl = parseDuration(spec.readyTtl);
  const remove: ReconcilePlan['remove'] = [];
  const kept: PlanMember[] = [];
  for (const m of input.members) {
    let reason: RemoveReason | null = null;
    if (m.busy || m.state === 'claimed') reason = null;
    else if (m.state === 'errored') reason = 'errored';
    else if (m.state === 'warming' && now - m.createdAt >= warmingTimeout) reason = 'warming_timeout';
    else if (m.state === 'ready' && now - m.stateChangedAt >= readyTtl) reason = 'ready_ttl';
    else if (m.specHash !== input.specHash) reason = 'outdated';
    else if (input.draining) reason = 'drain';
    if (reason) remove.push({ id: m.id, reason });
    else kept.push(m);
  }
  const idle = kept.filter((m) => !m.busy && m.state !== 'claimed');
  const total = kept.length;
  const target = input.draining ? 0 : (input.target ?? spec.target);
  const overflow = spec.onEmpty === 'overflow' && !input.draining ? Math.max(0, input.queuedJobs - idle.length) : 0;
  const wantedIdle = target + overflow;
  const room = Math.max(0, spec.max - total);
  const create = Math.min(CREATE_BATCH, room, Math.max(0, wantedIdle - idle.length));
  if (idle.length > wantedIdle) {
    // Oldest idle first: warming members last, they are closest to being useful fresh.
    const excess = [...idle]
      .sort((a, b) => Number(a.state === 'warming') - Number(b.state === 'warming') || a.createdAt - b.createdAt)
      .slice(0, idle.length - wantedIdle);
    for (const m of excess) remove.push({ id: m.id, reason: 'excess' });
  }
  return { remove, create, createReason: create > 0 && idle.length + create > target ? 'overflow' : 'target' };
}

/** The minimum target for a claim rate: ceil(C × (W + R) / 60 s), W the warm-up, R the reconcile interval. */
export function minimumTarget(claimsPerMinute: number, warmupMs: number, reconcileIntervalMs: number): number {
  return Math.ceil((claimsPerMinute * (warmupMs + reconcileIntervalMs)) / 60_000);
}
