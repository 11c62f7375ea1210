import { writeFileSync } from 'node:fs';
import type { HostedPoolStatus, Job, Pool } from '@rbtk/protocol';
import { expect, it } from 'vitest';
import type { Fleet } from './fleet.js';
import { type Jobs, shell } from './jobs.js';
import { waitFor } from './processes.js';

/*
 * Hosted pool scenarios that hold for every provider, run end to end by
 * hosted-pools.test.ts (process) and hosted-docker.test.ts (docker) against
 * their own fleet. What differs between providers is in a small adapter:
 * the flags that pick it, where its members show up (processes in /proc,
 * labelled containers), and how a job on a member waits for the test.
 */

export interface ProviderAdapter {
  /** `rbtk pool create` flags that pick the provider (and its image). */
  createFlags: string[];
  /** Member ids the provider runs (of one pool, or all), seen on its side: what a leak would show. */
  live(pool?: string): Promise<string[]>;
  /**
   * A file a job waits for: `inJob` is its path as a job on a member of the
   * pool sees it, `onHost(memberId)` where the test writes it for that member.
   */
  gate(pool: string, name: string): { inJob: string; onHost(memberId: string): string };
  /** How long to wait for members to come up (a container takes longer than a process). */
  readyTimeoutMs: number;
}

/** A fleet's hosted pools through the CLI and the REST API, for one provider. */
export class Hosted {
  constructor(
    readonly fleet: Fleet,
    readonly jobs: Jobs,
    readonly provider: ProviderAdapter,
  ) {}

  async status(pool: string): Promise<HostedPoolStatus> {
    return (await this.fleet.rbtkJson<Pool & { hostedStatus: HostedPoolStatus }>(['pool', 'show', pool])).hostedStatus;
  }

  /** Polls `rbtk pool show` until ok() holds. */
  settled(pool: string, what: string, ok: (s: HostedPoolStatus) => boolean, timeoutMs = this.provider.readyTimeoutMs): Promise<HostedPoolStatus> {
    return waitFor(`${pool}: ${what}`, async () => {
      const s = await this.status(pool);
      return ok(s) ? s : undefined;
    }, timeoutMs, 200);
  }

  ready(pool: string, n: number): Promise<HostedPoolStatus> {
    return this.settled(pool, `${n} ready`, (s) => s.counts.ready === n && s.counts.warming === 0);
  }

  async create(name: string, ...flags: string[]): Promise<void> {
    const res = await this.fleet.rbtk(['pool', 'create', name, '--type', 'hosted', ...this.provider.createFlags, ...flags]);
    expect(res.code, res.stderr).toBe(0);
  }

  job(pool: string, script: string): Promise<Job> {
    return this.jobs.submit(shell(script, { pool }));
  }
}

const sorted = (ids: string[]) => [...ids].sort();

/**
 * Registers the shared scenarios in the calling describe, in this order (each
 * builds on the pools of the ones before): fill and a burst that waits, on-empty
 * fail, on-empty overflow, TTL and spec-change recycling around a busy member,
 * SIGKILL and restart adoption, delete refused while members are left, drain
 * and resume.
 */
export function hostedPoolScenarios(get: () => Hosted): void {
  it('fills to its target, and a burst larger than the target waits: one job per member, never two', async () => {
    const h = get();
    await h.create('warm', '--target', '2', '--max', '4');
    const filled = await h.ready('warm', 2);
    expect(filled.members.every((m) => m.runnerId !== null)).toBe(true);
    expect(sorted(await h.provider.live('warm'))).toEqual(sorted(filled.members.map((m) => m.id)));

    // Concurrent submits: with --return terminate each member runs exactly one job.
    const submitted = await Promise.all(Array.from({ length: 6 }, (_, i) => h.job('warm', `sleep 0.2; echo job-${i}`)));
    const done = await Promise.all(submitted.map((j) => h.jobs.waitForState(j.id, ['succeeded', 'failed'], 60_000)));
    expect(done.map((j) => j.state)).toEqual(Array(6).fill('succeeded'));
    const runners = done.map((j) => j.runnerId);
    expect(new Set(runners).size).toBe(6);
    // Settled: the used members' rows go only once the provider has torn them down.
    const after = await h.settled('warm', '2 fresh ready', (st) => st.counts.ready === 2 && st.members.length === 2);
    expect(after.warmHits + after.warmMisses).toBe(6);
    expect(after.warmHits).toBeGreaterThanOrEqual(2);
    expect(after.recentActions.some((a) => a.reason === 'job_done')).toBe(true);
    // The six used members are gone on the provider's side too: only the two fresh ones run.
    expect(sorted(await h.provider.live('warm'))).toEqual(sorted(after.members.map((m) => m.id)));
  }, 90_000);

  it('on-empty fail refuses what no ready member takes, with the reason', async () => {
    const h = get();
    await h.create('strict', '--target', '1', '--max', '2', '--on-empty', 'fail');
    await h.ready('strict', 1);
    const results = await Promise.allSettled(Array.from({ length: 3 }, () => h.job('strict', 'sleep 1')));
    const ok = results.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<Job>[];
    const refused = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(ok).toHaveLength(1);
    expect(refused).toHaveLength(2);
    for (const r of refused) expect(String(r.reason)).toContain('no ready members in pool strict');
    expect((await h.jobs.waitForState(ok[0]!.value.id, ['succeeded', 'failed'])).state).toBe('succeeded');
  });

  it('on-empty overflow cold-starts extra members up to max', async () => {
    const h = get();
    await h.create('burst', '--target', '1', '--max', '3', '--on-empty', 'overflow', '--return', 'ready');
    await h.ready('burst', 1);
    const submitted = await Promise.all(Array.from({ length: 3 }, () => h.job('burst', 'sleep 2')));
    const done = await Promise.all(submitted.map((j) => h.jobs.waitForState(j.id, ['succeeded', 'failed'], 60_000)));
    expect(done.map((j) => j.state)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    const s = await h.status('burst');
    expect(s.recentActions.filter((a) => a.action === 'create' && a.reason === 'overflow').length).toBeGreaterThanOrEqual(1);
    expect(s.members.length).toBeLessThanOrEqual(3);
    // Back to the target: the overflow members are excess once idle, and torn down.
    const back = await h.settled('burst', 'back to 1', (st) => st.members.length === 1);
    expect(await h.provider.live('burst')).toEqual(back.members.map((m) => m.id));
  }, 90_000);

  it('recycles idle members on their ready TTL and on a labels change (rbtk pool update), never the busy one', async () => {
    const h = get();
    await h.create('ttl', '--target', '2', '--max', '3', '--ready-ttl', '3s', '--return', 'ready');
    await h.ready('ttl', 2);
    const gate = h.provider.gate('ttl', 'release');
    const held = await h.job('ttl', `while [ ! -f ${gate.inJob} ]; do sleep 0.1; done; echo released`);
    const running = await h.jobs.waitForState(held.id, ['running']);
    const busy = (await h.status('ttl')).members.find((m) => m.runnerId === running.runnerId)!;
    expect(busy.state).toBe('claimed');
    const idleBefore = (await h.status('ttl')).members.filter((m) => m.id !== busy.id).map((m) => m.id);

    await h.settled('ttl', 'idle members recycled on TTL', (s) =>
      s.recentActions.some((a) => a.reason === 'ready_ttl' && idleBefore.includes(a.memberId)),
    );
    expect((await h.status('ttl')).members.find((m) => m.id === busy.id)?.state).toBe('claimed');
    expect(await h.provider.live('ttl')).toContain(busy.id);

    // Labels are part of the runner config members get: a change makes every member outdated.
    const res = await h.fleet.rbtk(['pool', 'update', 'ttl', '--label', 'tier=fast', '--ready-ttl', '10m']);
    expect(res.code, res.stderr).toBe(0);
    const replaced = await h.settled('ttl', 'outdated idle members replaced', (s) => {
      const idle = s.members.filter((m) => m.id !== busy.id);
      return idle.length >= 2 && idle.every((m) => m.current && m.state === 'ready');
    });
    expect(replaced.spec.labels).toEqual({ tier: 'fast' });
    expect(replaced.recentActions.some((a) => a.reason === 'outdated')).toBe(true);
    const stillBusy = replaced.members.find((m) => m.id === busy.id)!;
    expect(stillBusy.state).toBe('claimed');
    expect(stillBusy.current).toBe(false);
    expect(await h.provider.live('ttl')).toContain(busy.id);
    // The new members' runners carry the labels (their hello, from runner.yaml); the busy one still has none.
    const runners = await h.fleet.rbtkJson<{ id: string; labels: Record<string, string> }[]>(['runner', 'list', '--pool', 'ttl']);
    const labelsOf = (runnerId: string | null) => runners.find((r) => r.id === runnerId)?.labels;
    for (const m of replaced.members.filter((x) => x.id !== busy.id)) expect(labelsOf(m.runnerId)).toEqual({ tier: 'fast' });
    expect(labelsOf(stillBusy.runnerId)).toEqual({});
    const picky = await h.jobs.submit(shell('echo picked', { pool: 'ttl', requires: { labels: { tier: 'fast' } } }));
    const pickyDone = await h.jobs.waitForState(picky.id, ['succeeded', 'failed']);
    expect(pickyDone.state).toBe('succeeded');
    expect(replaced.members.filter((m) => m.id !== busy.id).map((m) => m.runnerId)).toContain(pickyDone.runnerId);

    writeFileSync(gate.onHost(busy.id), ''); // releases the job
    expect((await h.jobs.waitForState(held.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    // Idle now, and outdated: replaced like the others.
    await h.settled('ttl', 'busy member replaced once idle', (s) => !s.members.some((m) => m.id === busy.id));
    expect(await h.provider.live('ttl')).not.toContain(busy.id);
  }, 120_000);

  it('a coordinator SIGKILLed and restarted adopts its members and leaks none', async () => {
    const h = get();
    const before = new Map<string, string[]>();
    for (const pool of ['warm', 'strict', 'burst', 'ttl']) {
      const s = await h.settled(pool, 'settled', (st) => st.counts.warming === 0 && st.counts.claimed === 0 && st.members.length === st.spec.target);
      before.set(pool, sorted(s.members.map((m) => m.id)));
    }
    const all = sorted([...before.values()].flat());
    expect(sorted(await h.provider.live())).toEqual(all);

    await h.fleet.restartCoordinator('SIGKILL');
    // The members survived the coordinator and reconnect to the new one.
    for (const [pool, ids] of before) {
      const s = await h.ready(pool, ids.length);
      expect(sorted(s.members.map((m) => m.id))).toEqual(ids);
    }
    expect(sorted(await h.provider.live())).toEqual(all);
    const j = await h.job('warm', 'echo adopted');
    expect((await h.jobs.waitForState(j.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    expect(before.get('warm')).toContain((await h.status('warm')).recentActions.find((a) => a.reason === 'job_done')?.memberId);
  }, 90_000);

  it('refuses to delete a pool with members; target 0 removes them and then it goes', async () => {
    const h = get();
    const refused = await h.fleet.rbtk(['pool', 'delete', 'strict']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('hosted member');
    const [left] = (await h.status('strict')).members.map((m) => m.id);
    expect(await h.provider.live('strict')).toEqual([left]);
    const res = await h.fleet.rbtk(['pool', 'update', 'strict', '--target', '0', '--min', '0']);
    expect(res.code, res.stderr).toBe(0);
    await h.settled('strict', 'empty', (s) => s.members.length === 0);
    // Its member is gone on the provider's side too.
    expect(await h.provider.live('strict')).toEqual([]);
    const deleted = await h.fleet.rbtk(['pool', 'delete', 'strict']);
    expect(deleted.code, deleted.stderr).toBe(0);
  });

  it('drain terminates ready members and replenishes none while the claimed one finishes; resume refills', async () => {
    const h = get();
    await h.create('drained', '--target', '2', '--max', '3', '--return', 'ready');
    await h.ready('drained', 2);
    const gate = h.provider.gate('drained', 'release');
    const held = await h.job('drained', `while [ ! -f ${gate.inJob} ]; do sleep 0.1; done; echo finished`);
    const running = await h.jobs.waitForState(held.id, ['running']);
    const busy = (await h.status('drained')).members.find((m) => m.runnerId === running.runnerId)!;

    const drain = await h.fleet.rbtk(['pool', 'drain', 'drained']);
    expect(drain.code, drain.stderr).toBe(0);
    const drained = await h.settled('drained', 'only the busy member left', (s) => s.members.length === 1);
    expect(drained.members.map((m) => [m.id, m.state])).toEqual([[busy.id, 'claimed']]);
    expect(drained.recentActions.some((a) => a.action === 'remove' && a.reason === 'drain')).toBe(true);
    expect(await h.provider.live('drained')).toEqual([busy.id]);
    // A forced pass creates nothing while draining.
    const forced = await h.fleet.rbtkJson<HostedPoolStatus>(['pool', 'reconcile', 'drained']);
    expect(forced.members.map((m) => m.id)).toEqual([busy.id]);

    writeFileSync(gate.onHost(busy.id), ''); // the claimed member finishes its job…
    expect((await h.jobs.waitForState(held.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    await h.settled('drained', 'empty', (s) => s.members.length === 0); // …and goes, though --return ready
    expect(await h.provider.live('drained')).toEqual([]);

    const resume = await h.fleet.rbtk(['pool', 'resume', 'drained']);
    expect(resume.code, resume.stderr).toBe(0);
    const refilled = await h.ready('drained', 2);
    expect(sorted(await h.provider.live('drained'))).toEqual(sorted(refilled.members.map((m) => m.id)));
  }, 90_000);
}
