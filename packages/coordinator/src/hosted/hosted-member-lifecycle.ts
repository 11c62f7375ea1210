import { CloseCode, coerceError, type HostedPoolSpec, type MemberState } from '@rbtk/protocol';
import { randomId } from '../auth/secrets.js';
import { busySlots } from '../jobs/runner-index.js';
import { registerRunner } from '../register-runner.js';
import { revokeRunner } from '../revoke.js';
import type { MemberRow } from '../store/hosted-store.js';
import type { PoolRecord } from '../store/rows.js';
import { ACTOR, type Act, type HostedCore, retire } from './hosted-core.js';
import { providerNamed } from './member-providers.js';
import type { HostedProviderImpl, MemberHandle } from './provider.js';

/*
 * What is done to one member through its provider: create (register its
 * runner, then create and start it), start (wake) a stopped one, stop one
 * (stopped mode), and remove one (revoke its runner, then tear it down).
 * Each leaves the member's row saying how it went: errored, with why, when
 * the provider failed; a create that failed also takes its runner with it.
 */

/** Creates and starts a member; why not (the member errored) when that failed. */
export async function createMember(
  core: HostedCore,
  pool: PoolRecord,
  spec: HostedPoolSpec,
  hash: string,
  provider: HostedProviderImpl,
  reason: string,
  act: Act,
): Promise<Error | null> {
  const { ctx, members } = core;
  const now = ctx.now();
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
  await ctx.store.hosted.insertMember(m);
  members.remember(m);
  members.creating.add(id);
  members.warmingSince.set(id, now);
  act('create', id, reason);
  try {
    const runnerName = `${pool.name}-${id}`;
    const registered = await registerRunner(ctx, {
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
    await members.update(m, { runnerId: registered.runnerId });
    const launch = {
      memberId: id,
      pool: pool.name,
      project: pool.project,
      spec,
      url: core.deps.url(),
      runnerId: registered.runnerId,
      runnerName,
      token: registered.token,
    };
    const made = await provider.create(launch);
    await members.update(m, { handle: made });
    const started: MemberHandle = await provider.start(id, made);
    await members.update(m, { handle: started });
    return null;
  } catch (err) {
    const e = coerceError(err);
    ctx.log.warn({ err: e, pool: pool.name, memberId: id, ...(isTimeout(e) ? { timedOut: true } : {}) }, 'hosted member failed to start');
    await failCreate(core, m, e.message);
    return e;
  } finally {
    members.creating.delete(id);
  }
}

function isTimeout(err: Error): boolean {
  return (err as { timedOut?: unknown }).timedOut === true;
}

/**
 * A member whose create failed, or was cut short by a crash: errored, with
 * why, and its runner revoked now. That runner never connected; kept, it
 * would sit OFFLINE in `rbtk runner list` for as long as the member stays
 * in sight (a pool backing off keeps its errored members). When the revoke
 * fails the runner stays with the member, and goes when the member is removed.
 */
export async function failCreate(core: HostedCore, m: MemberRow, error: string): Promise<void> {
  const { ctx, members } = core;
  let revoked = false;
  if (m.runnerId) {
    try {
      await revokeRunner(ctx, { runnerId: m.runnerId, actor: ACTOR, reason: 'hosted member create failed', details: { member: m.id, error } });
      revoked = true;
    } catch (err) {
      ctx.log.warn({ err: coerceError(err), memberId: m.id, runnerId: m.runnerId }, 'hosted member: revoking the runner of a failed create failed');
    }
  }
  await members.update(m, { state: 'errored', error, stateChangedAt: ctx.now(), ...(revoked ? { runnerId: null } : {}) });
}

/**
 * Starts a stopped member: warming again (synchronously, so no second claim
 * picks it) until its runner reconnects and says hello, then ready.
 */
export async function wakeMember(core: HostedCore, m: MemberRow, reason: string): Promise<void> {
  const { ctx, members } = core;
  const now = ctx.now();
  members.woken.set(m.id, now);
  members.warmingSince.set(m.id, now);
  core.books.act(m.poolId, 'start', m.id, reason);
  // Still connected from before its stop (the close did not go through): a fresh hello is what makes it
  // ready. Only that session: once started it may reconnect (and take its job) before start() returns.
  const before = m.runnerId ? ctx.jobs.index.get(m.runnerId) : undefined;
  try {
    const pending = members.update(m, { state: 'warming', stateChangedAt: now });
    // The provider that made it: the pool's may have changed since.
    const handle = await providerNamed(core.deps.providers, m.provider).start(m.id, m.handle ?? {});
    await pending;
    await members.update(m, { handle });
    if (before && ctx.jobs.index.get(m.runnerId!) === before) ctx.sessions.close(m.runnerId!, CloseCode.Normal, 'hosted member started');
  } catch (err) {
    const e = coerceError(err);
    ctx.log.warn({ err: e, memberId: m.id }, 'hosted member failed to start');
    await members.update(m, { state: 'errored', error: e.message, stateChangedAt: ctx.now() }).catch(() => {});
  }
}

/**
 * Revokes the member's runner (its credentials die first), then has the
 * provider that made it tear it down. When that fails the member stays,
 * errored, and a later pass tries again.
 */
export async function removeMember(core: HostedCore, m: MemberRow, reason: string, act: Act): Promise<void> {
  const { ctx, members } = core;
  retire(core, m.runnerId);
  act('remove', m.id, reason);
  try {
    if (m.runnerId) {
      await revokeRunner(ctx, { runnerId: m.runnerId, actor: ACTOR, reason: `hosted member removed: ${reason}`, details: { member: m.id } });
    }
    await providerNamed(core.deps.providers, m.provider).terminate(m.id, m.handle);
  } catch (err) {
    const e = coerceError(err);
    await members.update(m, { state: 'errored', error: e.message, stateChangedAt: ctx.now() });
    throw e;
  }
  await ctx.store.hosted.deleteMember(m.id);
  members.forget(m);
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
export async function stopMember(core: HostedCore, m: MemberRow): Promise<void> {
  const { ctx, members } = core;
  const entry = m.runnerId ? ctx.jobs.index.get(m.runnerId) : undefined;
  // Not connected (yet, or any more), or a claim reserved it a moment ago: not now.
  if (!entry || entry.retired || busySlots(entry) > 0 || m.state !== 'ready') return;
  ctx.jobs.index.retire(entry);
  members.stopping.add(m.id);
  core.books.act(m.poolId, 'stop', m.id, 'stopped_mode');
  try {
    await providerNamed(core.deps.providers, m.provider).stop(m.id, m.handle ?? {});
    await members.update(m, { state: 'stopped', stateChangedAt: ctx.now() });
    ctx.sessions.close(m.runnerId!, CloseCode.Normal, 'hosted member stopped');
  } catch (err) {
    const e = coerceError(err);
    ctx.log.warn({ err: e, memberId: m.id }, 'hosted member failed to stop');
    await members.update(m, { state: 'errored', error: e.message, stateChangedAt: ctx.now() });
  } finally {
    members.stopping.delete(m.id);
    // A claim came while it was being stopped: its job waits for it, so start it again at once.
    if (members.wakeAfterStop.delete(m.id) && (m.state as MemberState) === 'stopped') await wakeMember(core, m, 'claim');
  }
}
