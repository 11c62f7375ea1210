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
  /** Started for a claim a moment ago (stopped mode): its job is on the way, so it is not stopped again. */
  woken?: boolean;
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
  /** Of the target, how many run hot; idle members beyond it are stopped. Default: all (hot mode) or none (stopped). */
  hot?: number;
  /** At most this many creates (a pool backing off after failed ones: none, or one to try). Default: a batch. */
  createLimit?: number;
  /** Backing off: errored members stay (`rbtk pool show` says why creates fail), neither removed nor counted. */
  keepErrored?: boolean;
}

export type RemoveReason = 'errored' | 'warming_timeout' | 'ready_ttl' | 'outdated' | 'excess' | 'drain';

export interface ReconcilePlan {
  remove: { id: string; reason: RemoveReason }[];
  /** Members to create now (at most one batch). */
  create: number;
  /** Why they are created: the target, or overflow for queued jobs. */
  createReason: 'target' | 'overflow';
  /** Ready members to stop (more of them idle than run hot), oldest ready first. */
  stop: string[];
  /** Stopped members to start (fewer ready than run hot). */
  start: string[];
}

/** Most members one pass creates; the next pass (at once, since it was cut short, unless creates failed) creates more. */
export const CREATE_BATCH = 8;

/**
 * One reconcile pass, decided from a snapshot, in this order: remove errored
 * members; recycle members stuck warming past warmingTimeout and ready ones
 * idle past readyTtl; replace members of an outdated spec; create what is
 * missing up to the target (in a batch); recycled and outdated idle members
 * roll: replacements first (within max; at max one at a time), the old ones
 * go as the new ones are ready; remove the excess, oldest idle
 * first; of the idle members left, keep `hot` running and stop the others
 * (start stopped ones when too few run). A busy member is never touched. Pure: the clock is an input.
 */
export function planReconcile(input: PlanInput): ReconcilePlan {
  const { spec, now } = input;
  const warmingTimeout = parseDuration(spec.warmingTimeout);
  const readyTtl = parseDuration(spec.readyTtl);
  const remove: ReconcilePlan['remove'] = [];
  const kept: PlanMember[] = [];
  /** Idle ready or stopped members due for replacement: they go only once current ones are ready (a roll). */
  const stale: { m: PlanMember; reason: RemoveReason }[] = [];
  let counted = 0;
  for (const m of input.members) {
    let reason: RemoveReason | null = null;
    const idleUp = m.state === 'ready' || m.state === 'stopped';
    if (m.busy || m.state === 'claimed') reason = null;
    else if (m.state === 'errored' && input.keepErrored) continue;
    else if (m.state === 'errored') reason = 'errored';
    // Since it was created, or started again after it was stopped.
    else if (m.state === 'warming' && now - Math.max(m.createdAt, m.stateChangedAt) >= warmingTimeout) reason = 'warming_timeout';
    else if (idleUp && !m.woken && now - m.stateChangedAt >= readyTtl) reason = 'ready_ttl';
    else if (m.specHash !== input.specHash) reason = 'outdated';
    else if (input.draining) reason = 'drain';
    counted++;
    if (reason && idleUp && (reason === 'ready_ttl' || reason === 'outdated')) {
      stale.push({ m, reason });
      kept.push(m);
    } else if (reason) remove.push({ id: m.id, reason });
    else kept.push(m);
  }
  const staleIds = new Set(stale.map((s) => s.m.id));
  const idle = kept.filter((m) => !m.busy && m.state !== 'claimed');
  const current = idle.filter((m) => !staleIds.has(m.id));
  // Members being removed this pass still run until their teardown is done: live members never exceed max.
  const total = counted;
  const target = input.draining ? 0 : (input.target ?? spec.target);
  const overflow = spec.onEmpty === 'overflow' && !input.draining ? Math.max(0, input.queuedJobs - idle.length) : 0;
  const wantedIdle = target + overflow;
  const room = Math.max(0, spec.max - total);
  const limit = Math.min(CREATE_BATCH, input.createLimit ?? CREATE_BATCH);
  const create = Math.min(limit, room, Math.max(0, wantedIdle - current.length));
  // Stale ones go as current ones are ready, oldest first, so the ready count never drops below the target during a roll.
  const currentUp = current.filter((m) => m.state !== 'warming').length;
  let retire = Math.min(stale.length, Math.max(0, currentUp + stale.length - wantedIdle));
  // At max there is no room to surge: one at a time, once nothing current is warming.
  if (retire === 0 && stale.length > 0 && create === 0 && room === 0 && limit > 0 && currentUp === current.length) retire = 1;
  const oldest = [...stale].sort((a, b) => a.m.stateChangedAt - b.m.stateChangedAt || a.m.createdAt - b.m.createdAt);
  for (const s of oldest.slice(0, retire)) remove.push({ id: s.m.id, reason: s.reason });
  if (current.length > wantedIdle) {
    // Oldest idle first: warming members last, they are closest to being useful fresh.
    const excess = [...current]
      .sort((a, b) => Number(a.state === 'warming') - Number(b.state === 'warming') || a.createdAt - b.createdAt)
      .slice(0, current.length - wantedIdle);
    for (const m of excess) remove.push({ id: m.id, reason: 'excess' });
  }
  // Hot or stopped: of the idle members that stay, `hot` run and the rest are stopped (woken ones keep running).
  const removed = new Set(remove.map((r) => r.id));
  const staying = idle.filter((m) => !removed.has(m.id));
  const hot = input.draining ? 0 : Math.min(target, input.hot ?? (spec.mode === 'hot' ? target : 0));
  const running = staying.filter((m) => m.state === 'ready').sort((a, b) => a.stateChangedAt - b.stateChangedAt);
  const stoppable = running.filter((m) => !m.woken);
  const asleep = staying.filter((m) => m.state === 'stopped').sort((a, b) => b.stateChangedAt - a.stateChangedAt);
  const warming = staying.filter((m) => m.state === 'warming').length;
  const queued = input.draining ? 0 : input.queuedJobs;
  // Running beyond the hot count; as many as there are jobs waiting stay up (their dispatch is on its way:
  // a member that said hello a moment ago is not stopped under the job queued for it).
  const spare = Math.max(0, running.length - hot);
  const keptForQueue = Math.min(spare, queued);
  const stop = stoppable.slice(0, spare - keptForQueue).map((m) => m.id);
  // Warming members will run once ready: start stopped ones for what they and the members kept up do not
  // cover, of the hot count and of the jobs waiting (ones that came while their member was being stopped).
  const wanted = Math.max(hot - running.length - warming, queued - warming - keptForQueue);
  const start = asleep.slice(0, Math.max(0, wanted)).map((m) => m.id);
  return { remove, create, createReason: create > 0 && current.length + create > target ? 'overflow' : 'target', stop, start };
}

/** The minimum target for a claim rate: ceil(C × (W + R) / 60 s), W the warm-up, R the reconcile interval. */
export function minimumTarget(claimsPerMinute: number, warmupMs: number, reconcileIntervalMs: number): number {
  return Math.ceil((claimsPerMinute * (warmupMs + reconcileIntervalMs)) / 60_000);
}
