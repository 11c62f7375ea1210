import { coerceError, ErrorCode, type HostedPoolStatus, type HostedPoolSpec, RbtkError } from '@rbtk/protocol';
import type { MemberEvents } from '../jobs/job-service.js';
import type { JobRecord } from '../store/job-rows.js';
import type { MemberRow } from '../store/hosted-store.js';
import type { PoolRecord } from '../store/rows.js';
import { sleep, withJitter } from '../sleep.js';
import { CreateBackoffs } from './create-backoff.js';
import { PoolBooks } from './hosted-books.js';
import { type HostedCore, type HostedPoolsDeps, logFailure, retire } from './hosted-core.js';
import { endLeaks } from './hosted-leaks.js';
import { wakeMember } from './hosted-member-lifecycle.js';
import { MemberRegistry } from './hosted-members.js';
import { removeOrphanRunners } from './hosted-orphans.js';
import { hostedPools, runPass } from './hosted-pass.js';
import { PassScheduler } from './hosted-scheduler.js';
import { poolStatus } from './hosted-status.js';
import { listOwned, providerNamed, providerNames } from './member-providers.js';

/*
 * The hosted pools of this coordinator as one object: the job service's
 * member hooks (MemberEvents) and the scheduling of reconcile passes (one at
 * a time per pool, hosted-scheduler.ts; the periodic loop; stop). What a
 * pass does is in hosted-pass.ts, what is done to a member in
 * hosted-member-lifecycle.ts.
 */

export const DEFAULT_RECONCILE_INTERVAL_MS = 30_000;

/**
 * Hosted pools on this coordinator: keeps each at its target of ready
 * members through its provider, and follows their jobs (MemberEvents). Member
 * rows are written only here; one reconcile pass at a time per pool.
 */
export class HostedPools implements MemberEvents {
  private readonly core: HostedCore;
  private readonly scheduler: PassScheduler;
  /** Member runners registered before this are no create's of this process (removeOrphanRunners). */
  private readonly startedAt: number;

  constructor(deps: HostedPoolsDeps) {
    this.startedAt = deps.ctx.now();
    const members = new MemberRegistry(deps.ctx.store.hosted);
    this.core = {
      ctx: deps.ctx,
      deps,
      members,
      books: new PoolBooks(deps.ctx, members),
      backoffs: new CreateBackoffs({ log: deps.ctx.log, now: deps.ctx.now, retry: (poolId) => this.reconcileSoon(poolId) }),
      specs: new Map(),
    };
    this.scheduler = new PassScheduler(
      (poolId) => runPass(this.core, poolId, () => this.scheduler.passAgain(poolId)),
      (err) => logFailure(this.core, err, 'reconcile pass'),
    );
    deps.ctx.metrics.countPoolMembers(() => this.core.books.memberCounts());
  }

  private get members(): MemberRegistry {
    return this.core.members;
  }

  /** Loads the members the store knows (before the server listens, so their hellos find them). */
  async load(): Promise<void> {
    for (const m of await this.core.ctx.store.hosted.allMembers()) this.members.remember(m);
    this.core.books.loadAutoscale(await this.core.ctx.store.hosted.autoscaleRows());
  }

  // ---- MemberEvents (synchronous: they run inside the job service's after-commit step) ----

  admit(pool: PoolRecord, claimed: boolean): void {
    const spec = pool.hostedSpec!;
    this.core.books.note(pool);
    // A stopped member counts as warm: it is started now, and the job (queued) lands on it at its hello.
    if (claimed || this.wakeFor(pool)) {
      this.countClaim(pool, true);
      this.reconcileSoon(pool.id);
      return;
    }
    if (spec.onEmpty === 'fail') throw new RbtkError(ErrorCode.Conflict, `no ready members in pool ${pool.name}`);
    this.countClaim(pool, false);
    this.reconcileSoon(pool.id);
  }

  /** Kept in the pool's row (rbtk pool show across restarts) and counted on /metrics. */
  private countClaim(pool: PoolRecord, hit: boolean): void {
    this.core.ctx.metrics.poolClaimed({ project: pool.project, pool: pool.name }, hit);
    this.core.ctx.store.hosted.countClaim(pool.id, hit).catch((err: unknown) => logFailure(this.core, err, 'warm hit count'));
  }

  /** Starts the pool's oldest stopped member for a job; false when it has none. */
  private wakeFor(pool: PoolRecord): boolean {
    let oldest: MemberRow | undefined;
    for (const m of this.members.all()) {
      if (m.poolId !== pool.id || m.state !== 'stopped' || this.members.stopping.has(m.id)) continue;
      if (!oldest || m.stateChangedAt < oldest.stateChangedAt) oldest = m;
    }
    if (oldest) {
      void wakeMember(this.core, oldest, 'claim');
      return true;
    }
    // One being stopped right now (it turned ready a moment ago): it is the job's, started as soon as the
    // stop is done (a start racing the SIGSTOP could leave it frozen), rather than the job waiting or refused.
    for (const id of this.members.stopping) {
      const m = this.members.get(id);
      if (m?.poolId === pool.id && !this.members.wakeAfterStop.has(id)) {
        this.members.wakeAfterStop.add(id);
        return true;
      }
    }
    return false;
  }

  hello(runnerId: string): void {
    const m = this.members.ofRunner(runnerId);
    if (!m) return;
    const { ctx, books, members } = this.core;
    // Being stopped: it reconnected just before its SIGSTOP landed; it takes no job until it is started.
    if (m.state === 'errored' || members.released.has(m.id) || members.stopping.has(m.id)) {
      retire(this.core, runnerId);
      return;
    }
    // Warming, or stopped and resumed by someone else: it runs, so it is ready (a pass stops it again if it must).
    if (m.state === 'warming' || m.state === 'stopped') {
      const now = ctx.now();
      const since = members.warmingSince.get(m.id);
      members.warmingSince.delete(m.id);
      const labels = books.of(m.poolId).labels;
      if (since !== undefined && labels) ctx.metrics.poolMemberReady(labels, now - since, members.woken.has(m.id) ? 'stopped' : 'create');
      void members.update(m, { state: 'ready', stateChangedAt: now }).catch((err: unknown) => logFailure(this.core, err, 'member ready'));
      // A member made by a pass came up: whatever made creates fail is over.
      if (!members.woken.has(m.id)) this.core.backoffs.succeeded(m.poolId, labels);
      // Stopped mode: a pass now stops it, instead of it running idle until the next interval. Not one
      // woken for a claim: its job is on the way (this hello dispatches it).
      if (!members.woken.has(m.id) && this.stopsIdle(m.poolId)) this.reconcileSoon(m.poolId);
    }
  }

  /** Whether the pool keeps some idle members stopped (stopped mode, or a schedule with fewer hot than its target). */
  private stopsIdle(poolId: number): boolean {
    const size = this.core.books.of(poolId).size;
    if (size) return size.hot < size.target;
    return this.specOf(poolId)?.mode === 'stopped';
  }

  claimed(runnerId: string, job: JobRecord): void {
    const m = this.members.ofRunner(runnerId);
    if (!m) return;
    const now = this.core.ctx.now();
    this.members.woken.delete(m.id);
    void this.members
      .update(m, { state: 'claimed', jobId: job.id, stateChangedAt: now })
      .catch((err: unknown) => logFailure(this.core, err, 'member claim'));
    this.core.ctx.metrics.poolClaimLatency({ project: job.project, pool: job.poolName }, now - job.createdAt);
    this.core.books.sampleClaims(m.poolId);
    this.reconcileSoon(m.poolId);
  }

  isMember(runnerId: string): boolean {
    return this.members.ofRunner(runnerId) !== undefined;
  }

  slotFreed(runnerId: string): void {
    const m = this.members.ofRunner(runnerId);
    if (m) this.reconcileSoon(m.poolId);
  }

  released(runnerId: string, job: JobRecord): void {
    const m = this.members.ofRunner(runnerId);
    if (!m) return;
    const spec = this.specOf(m.poolId);
    const succeeded = job.state === 'succeeded';
    // Retired now, before any dispatch: a member that is not going back to ready never gets a second job.
    if (!(spec?.return === 'ready' && succeeded)) retire(this.core, runnerId);
    this.members.released.set(m.id, succeeded);
    this.core.books.sampleClaims(m.poolId);
    this.reconcileSoon(m.poolId);
  }

  private specOf(poolId: number): HostedPoolSpec | undefined {
    return this.core.specs.get(poolId);
  }

  // ---- reconcile ----

  /** A pass soon (coalesced with others asked for in this turn). */
  reconcileSoon(poolId: number): void {
    this.scheduler.soon(poolId);
  }

  /** Runs a pass of the pool (after the one running, if any); resolves when done. */
  reconcile(poolId: number): Promise<void> {
    return this.scheduler.run(poolId);
  }

  /**
   * Every hosted pool, once (the periodic loop); then their runners no member
   * names, and what every provider runs that no member row owns.
   */
  async reconcileAll(): Promise<void> {
    const pools = await hostedPools(this.core);
    const ids = new Set(pools.map((p) => p.id));
    this.core.books.keepOnly(ids);
    this.core.backoffs.keepOnly(ids);
    await Promise.all(pools.map((p) => this.reconcile(p.id)));
    if (this.scheduler.stopped) return;
    await removeOrphanRunners(this.core, pools, this.startedAt);
    // Every provider, not only those pools use now: members left by a provider a pool moved away from are found too.
    if (this.scheduler.stopped) return;
    const { providers } = this.core.deps;
    const awake = providerNames(providers).filter((name) => !providerNamed(providers, name).dormant?.());
    const leaks = await endLeaks(this.core, await listOwned(providers, awake));
    const failed = (memberId: string) => (err: unknown) => this.core.ctx.log.warn({ err: coerceError(err), memberId }, 'hosted member remove failed');
    await Promise.all(leaks.map((l) => l.done.catch(failed(l.memberId))));
  }

  /** What `rbtk pool show` prints for a hosted pool. */
  status(pool: PoolRecord): Promise<HostedPoolStatus> {
    return poolStatus(this.core, pool);
  }

  /** The periodic loop: every interval, each hosted pool once. Returns on abort. */
  async runLoop(intervalMs: number, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.reconcileAll();
      } catch (err) {
        logFailure(this.core, err, 'reconcile loop');
      }
      // sleep() checks signal.aborted first: a stop() that lands while a pass runs must not wait a whole interval.
      await sleep(withJitter(intervalMs), signal);
    }
  }

  /** Stops starting passes; waits for the ones running. Members keep running: a restart adopts them. */
  async stop(): Promise<void> {
    this.core.backoffs.stop();
    await this.scheduler.stop();
  }
}
