import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostedPoolStatus, Job, Pool } from '@rbtk/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from './helpers/fleet.js';
import { memberPids, procState } from './helpers/hosted.js';
import { Jobs, shell } from './helpers/jobs.js';
import { waitFor } from './helpers/processes.js';

/*
 * Hosted pools end to end with the process provider: a real coordinator that
 * starts its own rbtk-runner members as child processes, shell jobs on them,
 * and a coordinator SIGKILLed and restarted that adopts its members.
 */

describe('hosted pools (process provider)', () => {
  let fleet: Fleet;
  let jobs: Jobs;

  const status = async (pool: string): Promise<HostedPoolStatus> =>
    (await fleet.rbtkJson<Pool & { hostedStatus: HostedPoolStatus }>(['pool', 'show', pool])).hostedStatus;
  const ready = (pool: string, n: number) =>
    waitFor(`${n} ready in ${pool}`, async () => {
      const s = await status(pool);
      return s.counts.ready === n && s.counts.warming === 0 ? s : undefined;
    }, 40_000, 200);
  const create = async (name: string, ...flags: string[]) => {
    const res = await fleet.rbtk(['pool', 'create', name, '--type', 'hosted', '--provider', 'process', ...flags]);
    expect(res.code, res.stderr).toBe(0);
  };
  const job = (pool: string, script: string) => jobs.submit(shell(script, { pool }));

  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '3s', heartbeatInterval: '200ms', reconcileInterval: '1s' });
    jobs = new Jobs(fleet);
  });

  afterAll(async () => {
    // Members outlive a stopped coordinator by design (a restart adopts them): the test removes its own.
    for (const pid of memberPids(fleet.dataDir)) process.kill(pid, 'SIGKILL');
    expect(await fleet.close()).toEqual([]);
  });

  it('fills to its target, and a burst larger than the target waits: one job per member, never two', async () => {
    await create('warm', '--target', '2', '--max', '4');
    const filled = await ready('warm', 2);
    expect(filled.members.every((m) => m.runnerId !== null)).toBe(true);
    expect(memberPids(fleet.dataDir)).toHaveLength(2);

    // Concurrent submits: with --return terminate each member runs exactly one job.
    const submitted = await Promise.all(Array.from({ length: 6 }, (_, i) => job('warm', `sleep 0.2; echo job-${i}`)));
    const done = await Promise.all(submitted.map((j) => jobs.waitForState(j.id, ['succeeded', 'failed'], 60_000)));
    expect(done.map((j) => j.state)).toEqual(Array(6).fill('succeeded'));
    const runners = done.map((j) => j.runnerId);
    expect(new Set(runners).size).toBe(6);
    const after = await ready('warm', 2);
    expect(after.warmHits + after.warmMisses).toBe(6);
    expect(after.warmHits).toBeGreaterThanOrEqual(2);
    expect(after.recentActions.some((a) => a.reason === 'job_done')).toBe(true);
  });

  it('on-empty fail refuses what no ready member takes, with the reason', async () => {
    await create('strict', '--target', '1', '--max', '2', '--on-empty', 'fail');
    await ready('strict', 1);
    const results = await Promise.allSettled(Array.from({ length: 3 }, () => job('strict', 'sleep 1')));
    const ok = results.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<Job>[];
    const refused = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(ok).toHaveLength(1);
    expect(refused).toHaveLength(2);
    for (const r of refused) expect(String(r.reason)).toContain('no ready members in pool strict');
    expect((await jobs.waitForState(ok[0]!.value.id, ['succeeded', 'failed'])).state).toBe('succeeded');
  });

  it('on-empty overflow cold-starts extra members up to max', async () => {
    await create('burst', '--target', '1', '--max', '3', '--on-empty', 'overflow', '--return', 'ready');
    await ready('burst', 1);
    const submitted = await Promise.all(Array.from({ length: 3 }, () => job('burst', 'sleep 2')));
    const done = await Promise.all(submitted.map((j) => jobs.waitForState(j.id, ['succeeded', 'failed'], 60_000)));
    expect(done.map((j) => j.state)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    const s = await status('burst');
    expect(s.recentActions.filter((a) => a.action === 'create' && a.reason === 'overflow').length).toBeGreaterThanOrEqual(1);
    expect(s.members.length).toBeLessThanOrEqual(3);
    // Back to the target: the overflow members are excess once idle.
    await waitFor('burst back to 1', async () => ((await status('burst')).members.length === 1 ? true : undefined), 30_000, 200);
  });

  it('recycles idle members on their ready TTL and on a labels change (rbtk pool update), never the busy one', async () => {
    await create('ttl', '--target', '2', '--max', '3', '--ready-ttl', '3s', '--return', 'ready');
    await ready('ttl', 2);
    const gate = join(fleet.dir, 'release-ttl');
    const held = await job('ttl', `while [ ! -f ${gate} ]; do sleep 0.1; done; echo released`);
    const running = await jobs.waitForState(held.id, ['running']);
    const busy = (await status('ttl')).members.find((m) => m.runnerId === running.runnerId)!;
    expect(busy.state).toBe('claimed');
    const idleBefore = (await status('ttl')).members.filter((m) => m.id !== busy.id).map((m) => m.id);

    await waitFor('idle members recycled on TTL', async () => {
      const s = await status('ttl');
      return s.recentActions.some((a) => a.reason === 'ready_ttl' && idleBefore.includes(a.memberId)) ? s : undefined;
    }, 30_000, 200);
    expect((await status('ttl')).members.find((m) => m.id === busy.id)?.state).toBe('claimed');

    // Labels are part of the runner config members get: a change makes every member outdated.
    const res = await fleet.rbtk(['pool', 'update', 'ttl', '--label', 'tier=fast', '--ready-ttl', '10m']);
    expect(res.code, res.stderr).toBe(0);
    const replaced = await waitFor('outdated idle members replaced', async () => {
      const s = await status('ttl');
      const idle = s.members.filter((m) => m.id !== busy.id);
      return idle.length >= 2 && idle.every((m) => m.current && m.state === 'ready') ? s : undefined;
    }, 40_000, 200);
    expect(replaced.spec.labels).toEqual({ tier: 'fast' });
    expect(replaced.recentActions.some((a) => a.reason === 'outdated')).toBe(true);
    const stillBusy = replaced.members.find((m) => m.id === busy.id)!;
    expect(stillBusy.state).toBe('claimed');
    expect(stillBusy.current).toBe(false);
    // The new members' runners carry the labels (their hello, from runner.yaml); the busy one still has none.
    const runners = await fleet.rbtkJson<{ id: string; labels: Record<string, string> }[]>(['runner', 'list', '--pool', 'ttl']);
    const labelsOf = (runnerId: string | null) => runners.find((r) => r.id === runnerId)?.labels;
    for (const m of replaced.members.filter((x) => x.id !== busy.id)) expect(labelsOf(m.runnerId)).toEqual({ tier: 'fast' });
    expect(labelsOf(stillBusy.runnerId)).toEqual({});
    const picky = await jobs.submit(shell('echo picked', { pool: 'ttl', requires: { labels: { tier: 'fast' } } }));
    const pickyDone = await jobs.waitForState(picky.id, ['succeeded', 'failed']);
    expect(pickyDone.state).toBe('succeeded');
    expect(replaced.members.filter((m) => m.id !== busy.id).map((m) => m.runnerId)).toContain(pickyDone.runnerId);

    writeFileSync(gate, ''); // releases the job
    expect((await jobs.waitForState(held.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    // Idle now, and outdated: replaced like the others.
    await waitFor('busy member replaced once idle', async () => {
      const s = await status('ttl');
      return !s.members.some((m) => m.id === busy.id) ? s : undefined;
    }, 30_000, 200);
  });

  it('a coordinator SIGKILLed and restarted adopts its members and leaks none', async () => {
    const before = new Map<string, string[]>();
    for (const pool of ['warm', 'strict', 'burst', 'ttl']) {
      const s = await waitFor(`${pool} settled`, async () => {
        const st = await status(pool);
        return st.counts.warming === 0 && st.counts.claimed === 0 && st.members.length === st.spec.target ? st : undefined;
      }, 40_000, 200);
      before.set(pool, s.members.map((m) => m.id).sort());
    }
    const total = [...before.values()].reduce((n, ids) => n + ids.length, 0);
    expect(memberPids(fleet.dataDir)).toHaveLength(total);

    await fleet.restartCoordinator('SIGKILL');
    // The members survived the coordinator and reconnect to the new one.
    for (const [pool, ids] of before) {
      const s = await ready(pool, ids.length);
      expect(s.members.map((m) => m.id).sort()).toEqual(ids);
    }
    expect(memberPids(fleet.dataDir)).toHaveLength(total);
    const j = await job('warm', 'echo adopted');
    expect((await jobs.waitForState(j.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    expect(before.get('warm')).toContain((await status('warm')).recentActions.find((a) => a.reason === 'job_done')?.memberId);
  });

  it('refuses to delete a pool with members; target 0 removes them and then it goes', async () => {
    const refused = await fleet.rbtk(['pool', 'delete', 'strict']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('hosted member');
    const pidsBefore = memberPids(fleet.dataDir).length;
    const res = await fleet.rbtk(['pool', 'update', 'strict', '--target', '0', '--min', '0']);
    expect(res.code, res.stderr).toBe(0);
    await waitFor('strict empty', async () => ((await status('strict')).members.length === 0 ? true : undefined), 30_000, 200);
    expect(memberPids(fleet.dataDir)).toHaveLength(pidsBefore - 1);
    const deleted = await fleet.rbtk(['pool', 'delete', 'strict']);
    expect(deleted.code, deleted.stderr).toBe(0);
  });

  it('stopped mode: warmed members are stopped (SIGSTOP), outlive --offline-after, and a claim starts one for the job', async () => {
    await create('cold', '--target', '2', '--max', '3', '--mode', 'stopped');
    const stopped = await waitFor('2 stopped in cold', async () => {
      const s = await status('cold');
      return s.counts.stopped === 2 && s.members.length === 2 ? s : undefined;
    }, 40_000, 200);
    expect(stopped.hot).toBe(0);
    const pids = memberPids(fleet.dataDir).filter((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('/cold/'));
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(procState(pid)).toBe('T');
    // Longer than --offline-after (3s): their runners are OFFLINE, yet nothing replaces them.
    await new Promise((r) => setTimeout(r, 4000));
    const runners = await fleet.rbtkJson<{ id: string; status: string }[]>(['runner', 'list', '--pool', 'cold']);
    expect(runners.filter((r) => stopped.members.some((m) => m.runnerId === r.id)).map((r) => r.status)).toEqual(['OFFLINE', 'OFFLINE']);
    const still = await status('cold');
    expect(still.members.map((m) => m.id).sort()).toEqual(stopped.members.map((m) => m.id).sort());
    expect(still.members.every((m) => m.state === 'stopped')).toBe(true);

    const j = await job('cold', 'echo woke');
    const done = await jobs.waitForState(j.id, ['succeeded', 'failed'], 30_000);
    expect(done.state).toBe('succeeded');
    // It ran on a member that was stopped, started for it (oldest stopped first).
    const ranOn = stopped.members.find((m) => m.runnerId === done.runnerId);
    expect(ranOn).toBeDefined();
    const after = await status('cold');
    expect(after.recentActions.some((a) => a.action === 'start' && a.reason === 'claim' && a.memberId === ranOn!.id)).toBe(true);
    expect(after.warmHits).toBe(1);
    // Replaced (return terminate) and the pool is back to 2 stopped.
    await waitFor('cold back to 2 stopped', async () => {
      const s = await status('cold');
      return s.counts.stopped === 2 && s.members.length === 2 && !s.members.some((m) => m.id === ranOn!.id) ? s : undefined;
    }, 40_000, 200);

    // The same on /metrics: members by state, warm hits, claim latency and time to ready (from stopped too).
    const metrics = await (await fetch(`${fleet.url}/metrics`)).text();
    const value = (name: string, labels: string) =>
      Number(metrics.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((kv) => l.includes(kv)))?.split(' ').pop());
    expect(value('rbtk_pool_members', 'pool="cold",state="stopped"')).toBe(2);
    expect(value('rbtk_pool_warm_hits_total', 'pool="cold"')).toBe(1);
    // (Counted since this coordinator started: the restart above reset them.)
    expect(value('rbtk_pool_claim_latency_seconds_count', 'pool="cold"')).toBe(1);
    expect(value('rbtk_pool_time_to_ready_seconds_count', 'pool="cold",from="stopped"')).toBe(1);
    expect(value('rbtk_pool_time_to_ready_seconds_count', 'pool="cold",from="create"')).toBeGreaterThanOrEqual(3);
  });

  it('a schedule entry that matches sets the target and the hot count; rbtk pool show names it', async () => {
    const file = join(fleet.dir, 'schedule.yaml');
    writeFileSync(
      file,
      [
        'schedule:',
        '  - name: never',
        '    match: { day: [monday], time: ["00:00", "00:01"], timezone: Pacific/Kiritimati }',
        '    hot: 3',
        '  - name: always',
        '    hot: 1',
        '    stopped: 1',
      ].join('\n'),
    );
    const res = await fleet.rbtk(['pool', 'update', 'cold', '--schedule', file]);
    expect(res.code, res.stderr).toBe(0);
    const s = await waitFor('cold: 1 ready, 1 stopped', async () => {
      const st = await status('cold');
      return st.counts.ready === 1 && st.counts.stopped === 1 && st.members.length === 2 ? st : undefined;
    }, 40_000, 200);
    expect(s).toMatchObject({ schedule: 'always', target: 2, hot: 1 });
    const shown = await fleet.rbtk(['pool', 'show', 'cold']);
    expect(shown.stdout).toMatch(/schedule:\s+always/);
    const bad = join(fleet.dir, 'bad-schedule.yaml');
    writeFileSync(bad, '- name: x\n  match: { timezone: Mars/Olympus }\n');
    const refused = await fleet.rbtk(['pool', 'update', 'cold', '--schedule', bad]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('unknown timezone');
  });

  it('pool size prints the minimum target for a claim rate', async () => {
    const res = await fleet.rbtk(['pool', 'size', '--claims-per-min', '10', '--warmup', '90s']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.trim()).toBe('20'); // ceil(10 × (90 s + 30 s) / 60 s)
  });
});
