import {
  CloseCode,
  coerceError,
  ErrorCode,
  type HostedPoolSpec,
  type HostedPoolStatus,
  MemberState,
  RbtkError,
  type ReconcileAction,
} from '@rbtk/protocol';
import { randomId } from '../auth/secrets.js';
import type { CoordinatorContext } from '../context.js';
import type { MemberEvents } from '../jobs/job-service.js';
import { busySlots } from '../jobs/runner-index.js';
import type { PoolMemberCount } from '../metrics/coordinator-metrics.js';
import { registerRunner } from '../register-runner.js';
import { revokeRunner } from '../revoke.js';
import type { JobRecord } from '../store/job-rows.js';
import type { MemberRow } from '../store/hosted-store.js';
import type { PoolRecord } from '../store/rows.js';
import { sleep, withJitter } from '../sleep.js';
import { createAllowance, CreateBackoffs } from './create-backoff.js';
import { listOwned, type OwnedLists, providerNamed, providerNames } from './member-providers.js';
import { PassWork } from './pass-work.js';
import type { HostedProviderImpl, MemberHandle } from './provider.js';
import { CREATE_BATCH, planReconcile, type PlanMember } from './reconciler.js';
import { type AutoscaleState, autoscaleStep, type ClaimSample, type PoolSize, poolSize, pruneSamples, pushSample } from './sizing.js';
import { specHash } from './spec-hash.js';

export const DEFAULT_RECONCILE_INTERVAL_MS = 30_000;
const RECENT_ACTIONS = 20;
const ACTOR = 'hosted';
/** A member started for a claim keeps running this long even if its job went elsewhere; then it may be stopped again. */
const WAKE_GRACE_MS = 30_000;

export interface HostedPoolsDeps {
  ctx: CoordinatorContext;
  providers: Partial<Record<HostedPoolSpec['provider'], HostedProviderImpl>>;
  /** The coordinator's own URL, which members connect to; known once it listens. */
  url: () => string;
  /** Marks the agent build members run, so a new one recycles them (spec hash). */
  agentMark?: string;
}

interface PoolBook {
  actions: ReconcileAction[];
  lastReconcileAt: number | null;
  /** Concurrent claims over time (autoscale's input), compacted by pushSample. */
  samples: ClaimSample[];
  autoscale: AutoscaleState | null;
  /** The autoscale row as last written (or loaded): a pass writes only when it differs. */
  saved: string | null;
  /** What the last pass sized to. */
  size: PoolSize | null;
  labels: { project: string; pool: string } | null;
}

/**
 * Hosted pools on this coordinator: keeps each at its target of ready
 * members through its provider, and follows their jobs (MemberEvents). Member
 * rows are written only here; one reconcile pass at a time per pool.
 */
export class HostedPools implements MemberEvents {
  /** runner id -> member id, for the synchronous job hooks. */
  private readonly byRunner = new Map<string, string>();
  private readonly members = new Map<string, MemberRow>();
  /** Jobs that left their member, settled by the next pass: member id -> succeeded. */
  private readonly released_ = new Map<string, boolean>();
  private readonly books = new Map<number, PoolBook>();
  private readonly passes = new Map<number, Promise<void>>();
  private readonly again = new Set<number>();
  /** Members being stopped (no job lands on them meanwhile). */
  private readonly stopping = new Set<string>();
  /** Of those, ones a claim took meanwhile: started the moment their stop is done. */
  private readonly wakeAfterStop = new Set<string>();
  /** Members started for a claim: member id -> when (they are not stopped again within WAKE_GRACE_MS). */
  private readonly woken = new Map<string, number>();
  /** When each warming member was created or started: time to ready. */
  private readonly warmingSince = new Map<string, number>();
  private stopped = false;
  /** Pools whose creates fail: how long each waits before the next try. */
  private readonly backoffs: CreateBackoffs;

  constructor(private readonly deps: HostedPoolsDeps) {
    this.backoffs = new CreateBackoffs({ log: deps.ctx.log, now: deps.ctx.now, retry: (poolId) => this.reconcileSoon(poolId) });
    deps.ctx.metrics.countPoolMembers(() => this.memberCounts());
  }

  /** rbtk_pool_members: every state of every pool a pass has seen, 0 where it has none. */
  private memberCounts(): PoolMemberCount[] {
    const counts = new Map<number, Record<MemberState, number>>();
    for (const [poolId, book] of this.books) {
      if (book.labels) counts.set(poolId, Object.fromEntries(MemberState.options.map((st) => [st, 0])) as Record<MemberState, number>);
    }
    for (const m of this.members.values()) {
      const c = counts.get(m.poolId);
      if (c) c[m.state]++;
    }
    const out: PoolMemberCount[] = [];
    for (const [poolId, c] of counts) {
      const labels = this.book(poolId).labels!;
      for (const [state, count] of Object.entries(c)) out.push({ ...labels, state, count });
    }
    return out;
  }

  private get ctx(): CoordinatorContext {
    return this.deps.ctx;
  }

  private book(poolId: number): PoolBook {
    let b = this.books.get(poolId);
    if (!b) {
      b = { actions: [], lastReconcileAt: null, samples: [], autoscale: null, saved: null, size: null, labels: null };
      this.books.set(poolId, b);
    }
    return b;
  }

  private note(pool: PoolRecord): PoolBook {
    const book = this.book(pool.id);
    book.labels = { project: pool.project, pool: pool.name };
    return book;
  }

  /** Records the pool's concurrent claims now (autoscale's peak is taken over these). */
  private sampleClaims(poolId: number): void {
    const book = this.book(poolId);
    let claimed = 0;
    for (const m of this.members.values()) if (m.poolId === poolId && m.state === 'claimed' && !this.released_.has(m.id)) claimed++;
    const now = this.ctx.now();
    pushSample(book.samples, { at: now, claimed });
    pruneSamples(book.samples, now);
  }

  /**
   * Keeps what autoscale needs in the store, so a restart goes on from it
   * instead of from the spec's target. Once per pass and only when it
   * changed: pushSample leaves the samples as they were while the count of
   * claims stays the same, so a quiet pool writes nothing.
   */
  private async persistSizing(poolId: number, book: PoolBook): Promise<void> {
    const row = { poolId, state: book.autoscale, samples: book.samples };
    const json = JSON.stringify(row);
    if (json === book.saved) return;
    await this.ctx.store.hosted.saveAutoscale(row, this.ctx.now());
    book.saved = json;
  }

  private act(poolId: number, action: ReconcileAction['action'], memberId: string, reason: string): void {
    const book = this.book(poolId);
    book.actions.push({ at: new Date(this.ctx.now()).toISOString(), action, memberId, reason });
    if (book.actions.length > RECENT_ACTIONS) book.actions.splice(0, book.actions.length - RECENT_ACTIONS);
    this.ctx.log.info({ pool: book.labels?.pool, project: book.labels?.project, memberId, action, reason }, 'hosted pool member');
  }

  /** Loads the members the store knows (before the server listens, so their hellos find them). */
  async load(): Promise<void> {
    for (const m of await this.ctx.store.hosted.allMembers()) this.remember(m);
    // Autoscale goes on where it was: its target, its 4 h clock and the claims of the last 30 min.
    for (const row of await this.ctx.store.hosted.autoscaleRows()) {
      const book = this.book(row.poolId);
      book.autoscale = row.state;
      book.samples = row.samples;
      book.saved = JSON.stringify(row);
    }
  }

  private remember(m: MemberRow): void {
    this.members.set(m.id, m);
    if (m.runnerId) this.byRunner.set(m.runnerId, m.id);
  }

  private forget(m: MemberRow): void {
    this.members.delete(m.id);
    if (m.runnerId) this.byRunner.delete(m.runnerId);
    this.released_.delete(m.id);
    this.woken.delete(m.id);
    this.wakeAfterStop.delete(m.id);
    this.warmingSince.delete(m.id);
  }

  private async update(m: MemberRow, change: Parameters<CoordinatorContext['store']['hosted']['updateMember']>[1]): Promise<void> {
    Object.assign(m, change);
    await this.ctx.store.hosted.updateMember(m.id, change);
  }

  private memberOf(runnerId: string): MemberRow | undefined {
    const id = this.byRunner.get(runnerId);
    return id === undefined ? undefined : this.members.get(id);
  }

  private retire(runnerId: string | null): void {
    const entry = runnerId ? this.ctx.jobs.index.get(runnerId) : undefined;
    if (entry) entry.retired = true;
  }

  // ---- MemberEvents (synchronous: they run inside the job service's after-commit step) ----

  admit(pool: PoolRecord, claimed: boolean): void {
    const spec = pool.hostedSpec!;
    const book = this.note(pool);
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
    this.ctx.metrics.poolClaimed({ project: pool.project, pool: pool.name }, hit);
    this.ctx.store.hosted.countClaim(pool.id, hit).catch((err: unknown) => this.failed(err, 'warm hit count'));
  }

  /** Starts the pool's oldest stopped member for a job; false when it has none. */
  private wakeFor(pool: PoolRecord): boolean {
    let oldest: MemberRow | undefined;
    for (const m of this.members.values()) {
      if (m.poolId !== pool.id || m.state !== 'stopped' || this.stopping.has(m.id)) continue;
      if (!oldest || m.stateChangedAt < oldest.stateChangedAt) oldest = m;
    }
    if (oldest) {
      void this.wake(oldest, pool.hostedSpec!, 'claim');
      return true;
    }
    // One being stopped right now (it turned ready a moment ago): it is the job's, started as soon as the
    // stop is done (a start racing the SIGSTOP could leave it frozen), rather than the job waiting or refused.
    for (const id of this.stopping) {
      const m = this.members.get(id);
      if (m?.poolId === pool.id && !this.wakeAfterStop.has(id)) {
        this.wakeAfterStop.add(id);
        return true;
      }
    }
    return false;
  }

  /**
   * Starts a stopped member: warming again (synchronously, so no second claim
   * picks it) until its runner reconnects and says hello, then ready.
   */
  private async wake(m: MemberRow, spec: HostedPoolSpec, reason: string): Promise<void> {
    const now = this.ctx.now();
    this.woken.set(m.id, now);
    this.warmingSince.set(m.id, now);
    this.act(m.poolId, 'start', m.id, reason);
    // Still connected from before its stop (the close did not go through): a fresh hello is what makes it
    // ready. Only that session: once started it may reconnect (and take its job) before start() returns.
    const before = m.runnerId ? this.ctx.jobs.index.get(m.runnerId) : undefined;
    try {
      const pending = this.update(m, { state: 'warming', stateChangedAt: now });
      // The provider that made it: the pool's may have changed since.
      const handle = await providerNamed(this.deps.providers, m.provider).start(m.id, m.handle ?? {});
      await pending;
      await this.update(m, { handle });
      if (before && this.ctx.jobs.index.get(m.runnerId!) === before) this.ctx.sessions.close(m.runnerId!, CloseCode.Normal, 'hosted member started');
    } catch (err) {
      const e = coerceError(err);
      this.ctx.log.warn({ err: e, memberId: m.id }, 'hosted member failed to start');
      await this.update(m, { state: 'errored', error: e.message, stateChangedAt: this.ctx.now() }).catch(() => {});
    }
  }

  hello(runnerId: string): void {
    const m = this.memberOf(runnerId);
    if (!m) return;
    // Being stopped: it reconnected just before its SIGSTOP landed; it takes no job until it is started.
    if (m.state === 'errored' || this.released_.has(m.id) || this.stopping.has(m.id)) {
      this.retire(runnerId);
      return;
    }
    // Warming, or stopped and resumed by someone else: it runs, so it is ready (a pass stops it again if it must).
    if (m.state === 'warming' || m.state === 'stopped') {
      const now = this.ctx.now();
      const since = this.warmingSince.get(m.id);
      this.warmingSince.delete(m.id);
      const labels = this.book(m.poolId).labels;
      if (since !== undefined && labels) this.ctx.metrics.poolMemberReady(labels, now - since, this.woken.has(m.id) ? 'stopped' : 'create');
      void this.update(m, { state: 'ready', stateChangedAt: now }).catch((err: unknown) => this.failed(err, 'member ready'));
      // A member made by a pass came up: whatever made creates fail is over.
      if (!this.woken.has(m.id)) this.backoffs.succeeded(m.poolId, this.book(m.poolId).labels);
      // Stopped mode: a pass now stops it, instead of it running idle until the next interval. Not one
      // woken for a claim: its job is on the way (this hello dispatches it).
      if (!this.woken.has(m.id) && this.stopsIdle(m.poolId)) this.reconcileSoon(m.poolId);
    }
  }

  /** Whether the pool keeps some idle members stopped (stopped mode, or a schedule with fewer hot than its target). */
  private stopsIdle(poolId: number): boolean {
    const size = this.book(poolId).size;
    if (size) return size.hot < size.target;
    return this.specOf(poolId)?.mode === 'stopped';
  }

  claimed(runnerId: string, job: JobRecord): void {
    const m = this.memberOf(runnerId);
    if (!m) return;
    const now = this.ctx.now();
    this.woken.delete(m.id);
    void this.update(m, { state: 'claimed', jobId: job.id, stateChangedAt: now }).catch((err: unknown) =>
      this.failed(err, 'member claim'),
    );
    this.ctx.metrics.poolClaimLatency({ project: job.project, pool: job.poolName }, now - job.createdAt);
    this.sampleClaims(m.poolId);
    this.reconcileSoon(m.poolId);
  }

  isMember(runnerId: string): boolean {
    return this.memberOf(runnerId) !== undefined;
  }

  slotFreed(runnerId: string): void {
    const m = this.memberOf(runnerId);
    if (m) this.reconcileSoon(m.poolId);
  }

  released(runnerId: string, job: JobRecord): void {
    const m = this.memberOf(runnerId);
    if (!m) return;
    const spec = this.specOf(m.poolId);
    const succeeded = job.state === 'succeeded';
    // Retired now, before any dispatch: a member that is not going back to ready never gets a second job.
    if (!(spec?.return === 'ready' && succeeded)) this.retire(runnerId);
    this.released_.set(m.id, succeeded);
    this.sampleClaims(m.poolId);
    this.reconcileSoon(m.poolId);
  }

  private readonly specs = new Map<number, HostedPoolSpec>();
  private specOf(poolId: number): HostedPoolSpec | undefined {
    return this.specs.get(poolId);
  }

  // ---- reconcile ----

  /** A pass soon (coalesced with others asked for in this turn). */
  reconcileSoon(poolId: number): void {
    if (this.stopped) return;
    setImmediate(() => void this.reconcile(poolId));
  }

  /** Runs a pass of the pool (after the one running, if any); resolves when done. */
  reconcile(poolId: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const running = this.passes.get(poolId);
    if (running) {
      this.again.add(poolId);
      return running;
    }
    const chain = (async () => {
      do {
        this.again.delete(poolId);
        try {
          await this.pass(poolId);
        } catch (err) {
          this.failed(err, 'reconcile pass');
        }
      } while (this.again.has(poolId) && !this.stopped);
    })().finally(() => this.passes.delete(poolId));
    this.passes.set(poolId, chain);
    return chain;
  }

  /** Every hosted pool, once (the periodic loop); then what every provider runs that no member row owns. */
  async reconcileAll(): Promise<void> {
    const pools = await this.hostedPools();
    // Deleted pools drop out of /metrics.
    for (const id of this.books.keys()) if (!pools.some((p) => p.id === id)) this.books.delete(id);
    this.backoffs.keepOnly(new Set(pools.map((p) => p.id)));
    await Promise.all(pools.map((p) => this.reconcile(p.id)));
    // Every provider, not only those pools use now: members left by a provider a pool moved away from are found too.
    if (this.stopped) return;
    const leaks = await this.endLeaks(await listOwned(this.deps.providers, providerNames(this.deps.providers)));
    const failed = (memberId: string) => (err: unknown) => this.ctx.log.warn({ err: coerceError(err), memberId }, 'hosted member remove failed');
    await Promise.all(leaks.map((l) => l.done.catch(failed(l.memberId))));
  }

  private async hostedPools(): Promise<PoolRecord[]> {
    const out: PoolRecord[] = [];
    for (const project of await this.ctx.store.projects.list()) {
      for (const p of await this.ctx.store.pools.list(project.name)) if (p.hostedSpec) out.push(p);
    }
    return out;
  }

  private async findPool(poolId: number): Promise<PoolRecord | null> {
    return (await this.hostedPools()).find((p) => p.id === poolId) ?? null;
  }

  /**
   * One pass of the pool. What it starts (removals, creates, stops, starts)
   * is waited for as a whole, failures included, even when the pass fails
   * half-way: nothing it began outlives it, so the next pass never overlaps
   * it and stop() never closes the store under it.
   */
  private async pass(poolId: number): Promise<void> {
    const pool = await this.findPool(poolId);
    if (!pool?.hostedSpec) return;
    const work = new PassWork();
    try {
      await this.plan(pool, pool.hostedSpec, work);
    } finally {
      await work.settled();
      for (const f of work.failures) {
        this.ctx.log.warn({ err: f.err, pool: pool.name, project: pool.project, memberId: f.memberId }, `hosted member ${f.what} failed`);
      }
    }
    await this.afterPass(pool, pool.hostedSpec, work);
  }

  private async plan(pool: PoolRecord, spec: HostedPoolSpec, work: PassWork): Promise<void> {
    this.specs.set(pool.id, spec);
    const now = this.ctx.now();
    const book = this.note(pool);
    const act = (action: ReconcileAction['action'], memberId: string, reason: string) => this.act(pool.id, action, memberId, reason);

    const busy = await this.ctx.store.hosted.busyRunners(pool.id);
    const mine = [...this.members.values()].filter((m) => m.poolId === pool.id);
    // Each member as its own provider sees it: the pool's may have changed since it was made.
    const owned = await listOwned(this.deps.providers, [spec.provider, ...mine.map((m) => m.provider)]);
    /** A member whose provider cannot answer now is left as it is: only that provider could tear it down. */
    const remove = async (m: MemberRow, reason: string) => {
      const down = owned.failed.get(m.provider);
      if (!down) return work.add('remove', m.id, this.remove(m, reason, act).then(() => void work.removed++));
      if (m.state !== 'errored' || m.error !== down.message) await this.update(m, { state: 'errored', error: down.message, stateChangedAt: now });
    };
    const plan: PlanMember[] = [];
    for (const m of mine) {
      const entry = m.runnerId ? this.ctx.jobs.index.get(m.runnerId) : undefined;
      const isBusy = (m.runnerId !== null && busy.has(m.runnerId)) || (entry ? busySlots(entry) : 0) > 0;
      const released = this.released_.get(m.id);
      if (!isBusy && released !== undefined) {
        if (spec.return === 'ready' && released) {
          this.released_.delete(m.id);
          await this.update(m, { state: 'ready', jobId: null, stateChangedAt: now });
        } else {
          await remove(m, released ? 'job_done' : 'job_failed');
          continue;
        }
      } else if (!isBusy && m.state === 'claimed') {
        // Claimed with no job: its job ended while this coordinator was down. Fresh member instead.
        await remove(m, 'job_done');
        continue;
      }
      // A member whose process or container died is errored; one with a handle the provider no longer has too.
      const list = owned.lists.get(m.provider);
      const found = list?.get(m.id);
      if (list && !isBusy && m.state !== 'errored' && m.handle !== null && (!found || !found.alive)) {
        // Warming: it never came up, which is a failed create as far as backing off goes.
        if (m.state === 'warming') work.launchFailed++;
        await this.update(m, { state: 'errored', error: 'its process or container is gone', stateChangedAt: now });
      }
      const wokenAt = this.woken.get(m.id);
      if (wokenAt !== undefined && now - wokenAt >= WAKE_GRACE_MS) this.woken.delete(m.id);
      plan.push({
        id: m.id,
        state: m.state,
        specHash: m.specHash,
        createdAt: m.createdAt,
        stateChangedAt: m.stateChangedAt,
        busy: isBusy || this.stopping.has(m.id),
        woken: this.woken.has(m.id),
      });
    }
    for (const leak of await this.endLeaks(owned, act)) work.add('remove', leak.memberId, leak.done);

    const hash = specHash(spec, this.deps.agentMark ?? '', this.deps.url());
    this.sampleClaims(pool.id);
    book.autoscale = spec.autoscale ? autoscaleStep(spec, book.autoscale, book.samples, now) : null;
    const size = poolSize(spec, book.autoscale?.target ?? null, now);
    book.size = size;
    await this.persistSizing(pool.id, book);
    const queuedJobs = await this.ctx.store.hosted.queuedJobs(pool.id);
    const backoff = this.backoffs.of(pool.id, spec);
    // The pool's provider cannot answer: nothing is made with it this pass (a create would only fail).
    const allowance = owned.failed.has(spec.provider) ? 0 : createAllowance(backoff, now);
    const decided = planReconcile({
      spec,
      specHash: hash,
      members: plan,
      now,
      queuedJobs,
      draining: pool.status === 'draining',
      target: size.target,
      hot: size.hot,
      ...(allowance === undefined ? {} : { createLimit: allowance }),
      // Waiting out a backoff: the members that failed stay in sight with their error until the next try.
      keepErrored: backoff.failures > 0 && allowance === 0,
    });
    work.decided = decided;
    for (const r of decided.remove) {
      const m = this.members.get(r.id);
      if (!m) continue;
      // Stuck warming: it never came up.
      if (r.reason === 'warming_timeout') work.launchFailed++;
      await remove(m, r.reason);
    }
    const provider = owned.failed.has(spec.provider) ? null : providerNamed(this.deps.providers, spec.provider);
    for (let i = 0; provider && i < decided.create; i++) {
      const made = this.create(pool, spec, hash, provider, decided.createReason, act).then((err) => {
        if (!err) return void work.launched++;
        work.launchFailed++;
        work.lastCreateError = err.message;
      });
      work.add('create', null, made);
    }
    for (const m of decided.stop.map((id) => this.members.get(id))) {
      if (m && !owned.failed.has(m.provider)) work.add('stop', m.id, this.stopMember(m, spec));
    }
    for (const m of decided.start.map((id) => this.members.get(id))) {
      if (m && !owned.failed.has(m.provider)) work.add('start', m.id, this.wake(m, spec, queuedJobs > 0 ? 'queued' : 'hot'));
    }
    // Said after the work is done (afterPass): a provider that cannot list fails the pass, as it did before it was per member.
    const down = owned.failed.get(spec.provider);
    if (down) work.error = down;
  }

  /** The pool's bookkeeping once its pass's work is done: backoff, the time of the pass, whether another follows at once. */
  private async afterPass(pool: PoolRecord, spec: HostedPoolSpec, work: PassWork): Promise<void> {
    const failed = work.launchFailed + work.failures.filter((f) => f.what === 'create').length;
    this.backoffs.record(pool, spec, failed, work.launched, work.lastCreateError);
    this.book(pool.id).lastReconcileAt = this.ctx.now();
    const decided = work.decided;
    if (decided) {
      // A job that came while its member was being stopped waits: the next pass starts one for it.
      if (decided.stop.length > 0 && (await this.ctx.store.hosted.queuedJobs(pool.id)) > 0) this.again.add(pool.id);
      // A full batch: more may be missing; removals done free room for creates. Not after failed creates or
      // removals that could not be done: the backoff and the interval pace those, not an immediate pass.
      if (failed === 0 && (decided.create === CREATE_BATCH || (work.removed > 0 && decided.create === 0))) this.again.add(pool.id);
    }
    if (work.error) throw work.error;
  }

  /**
   * Leaked: a provider runs a member the store does not know (a crash between
   * its create and its row, or one left by a provider a pool moved away from).
   * Starts ending each; the caller waits for them.
   */
  private async endLeaks(
    owned: OwnedLists,
    act?: (a: ReconcileAction['action'], id: string, why: string) => void,
  ): Promise<{ memberId: string; done: Promise<void> }[]> {
    const ends: { memberId: string; done: Promise<void> }[] = [];
    for (const [name, list] of owned.lists) {
      for (const o of list.values()) {
        if (this.members.has(o.memberId) || !(await this.isLeak(o.memberId))) continue;
        const done = providerNamed(this.deps.providers, name)
          .terminate(o.memberId, o.handle)
          .then(() => {
            if (act) act('remove', o.memberId, 'leaked');
            else this.ctx.log.info({ memberId: o.memberId, provider: name }, 'hosted member removed: leaked');
          });
        ends.push({ memberId: o.memberId, done });
      }
    }
    return ends;
  }

  /** Only members of pools of this store are ours to kill: a leak is a folder whose member row is gone. */
  private async isLeak(memberId: string): Promise<boolean> {
    return !(await this.ctx.store.hosted.allMembers()).some((m) => m.id === memberId);
  }

  /** Creates and starts a member; why not (the member errored) when that failed. */
  private async create(
    pool: PoolRecord,
    spec: HostedPoolSpec,
    hash: string,
    provider: HostedProviderImpl,
    reason: string,
    act: (a: ReconcileAction['action'], id: string, why: string) => void,
  ): Promise<Error | null> {
    const now = this.ctx.now();
    const id = `m${randomId(10).toLowerCase()}`;
    const m: MemberRow = {
      id,
      poolId: pool.id,
      runnerId: null,
      state: 'warming',
      provider: spec.provider,
      handle: null,
      specHash: hash,
      jobId: null,
      error: null,
      createdAt: now,
      stateChangedAt: now,
    };
    await this.ctx.store.hosted.insertMember(m);
    this.remember(m);
    this.warmingSince.set(id, now);
    act('create', id, reason);
    try {
      const runnerName = `${pool.name}-${id}`;
      const registered = await registerRunner(this.ctx, {
        registrationTokenId: null,
        actor: `${ACTOR}:${pool.name}`,
        pool: { id: pool.id, name: pool.name, project: pool.project },
        name: runnerName,
        // Its hello says the same (runner.yaml); the row has them from the start.
        labels: { ...spec.labels },
        airgapped: pool.airgapped,
        agentVersion: null,
        host: null,
      });
      await this.update(m, { runnerId: registered.runnerId });
      this.byRunner.set(registered.runnerId, id);
      const launch = {
        memberId: id,
        pool: pool.name,
        project: pool.project,
        spec,
        url: this.deps.url(),
        runnerId: registered.runnerId,
        runnerName,
        token: registered.token,
      };
      const made = await provider.create(launch);
      await this.update(m, { handle: made });
      const started: MemberHandle = await provider.start(id, made);
      await this.update(m, { handle: started });
      return null;
    } catch (err) {
      const e = coerceError(err);
      this.ctx.log.warn({ err: e, pool: pool.name, memberId: id }, 'hosted member failed to start');
      await this.update(m, { state: 'errored', error: e.message, stateChangedAt: this.ctx.now() });
      return e;
    }
  }

  /**
   * Revokes the member's runner (its credentials die first), then has the
   * provider that made it tear it down. When that fails the member stays,
   * errored, and a later pass tries again.
   */
  private async remove(m: MemberRow, reason: string, act: (a: ReconcileAction['action'], id: string, why: string) => void): Promise<void> {
    this.retire(m.runnerId);
    act('remove', m.id, reason);
    try {
      if (m.runnerId) {
        await revokeRunner(this.ctx, { runnerId: m.runnerId, actor: ACTOR, reason: `hosted member removed: ${reason}`, details: { member: m.id } });
      }
      await providerNamed(this.deps.providers, m.provider).terminate(m.id, m.handle);
    } catch (err) {
      const e = coerceError(err);
      await this.update(m, { state: 'errored', error: e.message, stateChangedAt: this.ctx.now() });
      throw e;
    }
    await this.ctx.store.hosted.deleteMember(m.id);
    this.forget(m);
  }

  /**
   * Stops an idle ready member (stopped mode). A frozen runner cannot
   * heartbeat or answer pings, so rather than pretend it is online the
   * coordinator takes it out of dispatch first (retired: no claim lands on
   * it from this instant), freezes it, then closes its session. Its runner
   * then goes OFFLINE like any disconnected one, which is the truth and costs
   * nothing: it holds no job, so the liveness loop has nothing to requeue, and
   * the reconciler judges members by their provider (still there) and their
   * member state (stopped), never by runner status. A claim starts it; the
   * runner reconnects at once on SIGCONT (no backoff) and its hello makes it
   * ready and dispatchable, so the queued job lands on it. Its ready TTL
   * recycles it long before the reaper (--reap-after) could delete its runner.
   */
  private async stopMember(m: MemberRow, spec: HostedPoolSpec): Promise<void> {
    const entry = m.runnerId ? this.ctx.jobs.index.get(m.runnerId) : undefined;
    // Not connected (yet, or any more), or a claim reserved it a moment ago: not now.
    if (!entry || entry.retired || busySlots(entry) > 0 || m.state !== 'ready') return;
    entry.retired = true;
    this.stopping.add(m.id);
    this.act(m.poolId, 'stop', m.id, 'stopped_mode');
    try {
      await providerNamed(this.deps.providers, m.provider).stop(m.id, m.handle ?? {});
      await this.update(m, { state: 'stopped', stateChangedAt: this.ctx.now() });
      this.ctx.sessions.close(m.runnerId!, CloseCode.Normal, 'hosted member stopped');
    } catch (err) {
      const e = coerceError(err);
      this.ctx.log.warn({ err: e, memberId: m.id }, 'hosted member failed to stop');
      await this.update(m, { state: 'errored', error: e.message, stateChangedAt: this.ctx.now() });
    } finally {
      this.stopping.delete(m.id);
      // A claim came while it was being stopped: its job waits for it, so start it again at once.
      if (this.wakeAfterStop.delete(m.id) && (m.state as MemberState) === 'stopped') await this.wake(m, spec, 'claim');
    }
  }

  /** What `rbtk pool show` prints for a hosted pool. */
  async status(pool: PoolRecord): Promise<HostedPoolStatus> {
    const spec = pool.hostedSpec!;
    const hash = specHash(spec, this.deps.agentMark ?? '', this.deps.url());
    const rows = await this.ctx.store.hosted.members(pool.id);
    const counts: Record<MemberState, number> = { warming: 0, ready: 0, stopped: 0, claimed: 0, errored: 0 };
    for (const m of rows) counts[m.state]++;
    const book = this.book(pool.id);
    const size = book.size ?? poolSize(spec, book.autoscale?.target ?? null, this.ctx.now());
    const claims = await this.ctx.store.hosted.claimCounts(pool.id);
    const iso = (ms: number) => new Date(ms).toISOString();
    return {
      pool: pool.name,
      spec,
      target: size.target,
      hot: size.hot,
      schedule: size.schedule,
      counts,
      members: rows.map((m) => ({
        id: m.id,
        state: m.state,
        runnerId: m.runnerId,
        jobId: m.state === 'claimed' ? m.jobId : null,
        current: m.specHash === hash,
        error: m.error,
        createdAt: iso(m.createdAt),
        stateChangedAt: iso(m.stateChangedAt),
      })),
      warmHits: claims.hits,
      warmMisses: claims.misses,
      recentActions: [...book.actions],
      lastReconcileAt: book.lastReconcileAt === null ? null : iso(book.lastReconcileAt),
    };
  }

  /** The periodic loop: every interval, each hosted pool once. Returns on abort. */
  async runLoop(intervalMs: number, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.reconcileAll();
      } catch (err) {
        this.failed(err, 'reconcile loop');
      }
      // sleep() checks signal.aborted first: a stop() that lands while a pass runs must not wait a whole interval.
      await sleep(withJitter(intervalMs), signal);
    }
  }

  /** Stops starting passes; waits for the ones running. Members keep running: a restart adopts them. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.backoffs.stop();
    await Promise.allSettled([...this.passes.values()]);
  }

  private failed(err: unknown, what: string): void {
    this.ctx.log.error({ err: coerceError(err) }, `${what} failed`);
  }
}
