import type { HostedPoolSpec } from '@rbtk/protocol';
import { busySlots } from '../jobs/runner-index.js';
import type { MemberRow } from '../store/hosted-store.js';
import type { PoolRecord } from '../store/rows.js';
import { createAllowance } from './create-backoff.js';
import type { Act, HostedCore } from './hosted-core.js';
import { endLeaks } from './hosted-leaks.js';
import { createMember, failCreate, removeMember, stopMember, wakeMember } from './hosted-member-lifecycle.js';
import { listOwned, providerNamed } from './member-providers.js';
import { PassWork } from './pass-work.js';
import { CREATE_BATCH, planReconcile, type PlanMember } from './reconciler.js';
import { autoscaleStep, poolSize } from './sizing.js';
import { specHash } from './spec-hash.js';

/*
 * One reconcile pass of one pool (runPass), in two halves: planPass() settles
 * what the jobs and providers did since the last pass (released members,
 * dead ones, leaks), decides with planReconcile() and starts the work;
 * finishPass(), once that work is done, records the outcome (create backoff,
 * the time of the pass) and says whether another pass should follow at once.
 */

/** Every hosted pool of the store. */
export async function hostedPools(core: HostedCore): Promise<PoolRecord[]> {
  const out: PoolRecord[] = [];
  for (const project of await core.ctx.store.projects.list()) {
    for (const p of await core.ctx.store.pools.list(project.name)) if (p.hostedSpec) out.push(p);
  }
  return out;
}

/**
 * One pass of the pool. What it starts (removals, creates, stops, starts)
 * is waited for as a whole, failures included, even when the pass fails
 * half-way: nothing it began outlives it, so the next pass never overlaps
 * it and stop() never closes the store under it. passAgain: another pass
 * should follow at once (said before a failure of the pass is thrown).
 */
export async function runPass(core: HostedCore, poolId: number, passAgain: () => void): Promise<void> {
  const pool = (await hostedPools(core)).find((p) => p.id === poolId);
  if (!pool?.hostedSpec) return;
  const work = new PassWork();
  const act: Act = (action, memberId, reason) => core.books.act(pool.id, action, memberId, reason);
  try {
    await planPass(core, pool, pool.hostedSpec, work, act);
  } finally {
    await work.settled();
    for (const f of work.failures) {
      core.ctx.log.warn({ err: f.err, pool: pool.name, project: pool.project, memberId: f.memberId }, `hosted member ${f.what} failed`);
    }
  }
  if (await finishPass(core, pool, pool.hostedSpec, work)) passAgain();
  if (work.error) throw work.error;
}

/** A member started for a claim keeps running this long even if its job went elsewhere; then it may be stopped again. */
const WAKE_GRACE_MS = 30_000;

async function planPass(core: HostedCore, pool: PoolRecord, spec: HostedPoolSpec, work: PassWork, act: Act): Promise<void> {
  const { ctx, members } = core;
  core.specs.set(pool.id, spec);
  const now = ctx.now();
  const book = core.books.note(pool);

  const busy = await ctx.store.hosted.busyRunners(pool.id);
  const mine = members.ofPool(pool.id);
  // Each member as its own provider sees it: the pool's may have changed since it was made.
  const owned = await listOwned(core.deps.providers, [spec.provider, ...mine.map((m) => m.provider)]);
  /** A member whose provider cannot answer now is left as it is: only that provider could tear it down. */
  const remove = async (m: MemberRow, reason: string) => {
    const down = owned.failed.get(m.provider);
    if (!down) return work.add('remove', m.id, removeMember(core, m, reason, act).then(() => void work.removed++));
    if (m.state !== 'errored' || m.error !== down.message) await members.update(m, { state: 'errored', error: down.message, stateChangedAt: now });
  };
  const plan: PlanMember[] = [];
  for (const m of mine) {
    const entry = m.runnerId ? ctx.jobs.index.get(m.runnerId) : undefined;
    const isBusy = (m.runnerId !== null && busy.has(m.runnerId)) || (entry ? busySlots(entry) : 0) > 0;
    const released = members.released.get(m.id);
    if (!isBusy && released !== undefined) {
      if (spec.return === 'ready' && released) {
        members.released.delete(m.id);
        await members.update(m, { state: 'ready', jobId: null, stateChangedAt: now });
      } else {
        await remove(m, released ? 'job_done' : 'job_failed');
        continue;
      }
    } else if (!isBusy && m.state === 'claimed') {
      // Claimed with no job: its job ended while this coordinator was down. Fresh member instead.
      await remove(m, 'job_done');
      continue;
    }
    const list = owned.lists.get(m.provider);
    const found = list?.get(m.id);
    // Warming with no handle and no create running here: a coordinator stopped during its create. What
    // the provider made of it is adopted (and judged below); nothing made, it failed (its runner goes).
    if (list && m.state === 'warming' && m.handle === null && !members.creating.has(m.id)) {
      if (found) await members.update(m, { handle: found.handle });
      else await failCreate(core, m, 'its create did not finish: the coordinator stopped during it');
    }
    // A member whose process or container died is errored; one with a handle the provider no longer has too.
    if (list && !isBusy && m.state !== 'errored' && m.handle !== null && (!found || !found.alive)) {
      // Warming: it never came up, which is a failed create as far as backing off goes.
      if (m.state === 'warming') work.launchFailed++;
      await members.update(m, { state: 'errored', error: 'its process or container is gone', stateChangedAt: now });
    }
    const wokenAt = members.woken.get(m.id);
    if (wokenAt !== undefined && now - wokenAt >= WAKE_GRACE_MS) members.woken.delete(m.id);
    plan.push({
      id: m.id,
      state: m.state,
      specHash: m.specHash,
      createdAt: m.createdAt,
      stateChangedAt: m.stateChangedAt,
      busy: isBusy || members.stopping.has(m.id),
      woken: members.woken.has(m.id),
    });
  }
  for (const leak of await endLeaks(core, owned, act)) work.add('remove', leak.memberId, leak.done);

  const hash = specHash(spec, core.deps.agentMark ?? '', core.deps.url());
  core.books.sampleClaims(pool.id);
  book.autoscale = spec.autoscale ? autoscaleStep(spec, book.autoscale, book.samples, now) : null;
  const size = poolSize(spec, book.autoscale?.target ?? null, now);
  book.size = size;
  await core.books.persistSizing(pool.id, book);
  const queuedJobs = await ctx.store.hosted.queuedJobs(pool.id);
  const backoff = core.backoffs.of(pool.id, spec);
  // The pool's provider cannot answer: nothing is made with it this pass (a create would only fail).
  const providerDown = owned.failed.get(spec.provider);
  const allowance = providerDown ? 0 : createAllowance(backoff, now);
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
    const m = members.get(r.id);
    if (!m) continue;
    // Stuck warming: it never came up.
    if (r.reason === 'warming_timeout') work.launchFailed++;
    await remove(m, r.reason);
  }
  const provider = providerDown ? null : providerNamed(core.deps.providers, spec.provider);
  for (let i = 0; provider && i < decided.create; i++) {
    const made = createMember(core, pool, spec, hash, provider, decided.createReason, act).then((err) => {
      if (!err) return void work.launched++;
      work.launchFailed++;
      work.lastCreateError = err.message;
    });
    work.add('create', null, made);
  }
  for (const m of decided.stop.map((id) => members.get(id))) {
    if (m && !owned.failed.has(m.provider)) work.add('stop', m.id, stopMember(core, m));
  }
  for (const m of decided.start.map((id) => members.get(id))) {
    if (m && !owned.failed.has(m.provider)) work.add('start', m.id, wakeMember(core, m, queuedJobs > 0 ? 'queued' : 'hot'));
  }
  // Said after the work is done (finishPass): a provider that cannot list fails the pass, as it did before it was per member.
  if (providerDown) work.error = providerDown;
}

/**
 * The pool's bookkeeping once its pass's work is done: backoff, the time of
 * the pass; true when another pass should follow at once.
 */
async function finishPass(core: HostedCore, pool: PoolRecord, spec: HostedPoolSpec, work: PassWork): Promise<boolean> {
  const failed = work.launchFailed + work.failures.filter((f) => f.what === 'create').length;
  core.backoffs.record(pool, spec, failed, work.launched, work.lastCreateError);
  core.books.of(pool.id).lastReconcileAt = core.ctx.now();
  const decided = work.decided;
  let again = false;
  if (decided) {
    // A job that came while its member was being stopped waits: the next pass starts one for it.
    if (decided.stop.length > 0 && (await core.ctx.store.hosted.queuedJobs(pool.id)) > 0) again = true;
    // A full batch: more may be missing; removals done free room for creates. Not after failed creates or
    // removals that could not be done: the backoff and the interval pace those, not an immediate pass.
    if (failed === 0 && (decided.create === CREATE_BATCH || (work.removed > 0 && decided.create === 0))) again = true;
  }
  return again;
}
