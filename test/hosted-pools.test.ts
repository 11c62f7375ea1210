import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type { HostedPoolStatus } from '@rbtk/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from './helpers/fleet.js';
import { memberPids, processMembers, procState } from './helpers/hosted.js';
import { Hosted, hostedPoolScenarios, type ProviderAdapter } from './helpers/hosted-scenarios.js';
import { Jobs } from './helpers/jobs.js';
import { waitFor } from './helpers/processes.js';

/*
 * Hosted pools end to end with the process provider: a real coordinator that
 * starts its own rbtk-runner members as child processes, shell jobs on them,
 * and a coordinator SIGKILLed and restarted that adopts its members. The
 * provider-agnostic scenarios are shared with the docker provider
 * (helpers/hosted-scenarios.ts); stopped mode and schedules are checked here.
 */

/** Members are rbtk-runner processes on this host: found in /proc, and a job sees the test's files. */
function processAdapter(fleet: Fleet): ProviderAdapter {
  return {
    createFlags: ['--provider', 'process'],
    live: async (pool) => processMembers(fleet.dataDir).filter((m) => pool === undefined || m.pool === pool).map((m) => m.memberId),
    gate: (pool, name) => {
      const path = join(fleet.dir, `${name}-${pool}`);
      return { inJob: path, onHost: () => path };
    },
    readyTimeoutMs: 40_000,
  };
}

describe('hosted pools (process provider)', () => {
  let fleet: Fleet;
  let hosted: Hosted;

  const status = (pool: string): Promise<HostedPoolStatus> => hosted.status(pool);
  const create = (name: string, ...flags: string[]) => hosted.create(name, ...flags);
  const job = (pool: string, script: string) => hosted.job(pool, script);

  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '3s', heartbeatInterval: '200ms', reconcileInterval: '1s' });
    hosted = new Hosted(fleet, new Jobs(fleet), processAdapter(fleet));
  });

  afterAll(async () => {
    // Members outlive a stopped coordinator by design (a restart adopts them): the test removes its own.
    for (const pid of memberPids(fleet.dataDir)) process.kill(pid, 'SIGKILL');
    expect(await fleet.close()).toEqual([]);
  });

  hostedPoolScenarios(() => hosted);

  // Process only from here: SIGSTOP state letters and pids from /proc.
  it('stopped mode: warmed members are stopped (SIGSTOP), outlive --offline-after, and a claim starts one for the job', async () => {
    await create('cold', '--target', '2', '--max', '3', '--mode', 'stopped');
    const stopped = await waitFor('2 stopped in cold', async () => {
      const s = await status('cold');
      return s.counts.stopped === 2 && s.members.length === 2 ? s : undefined;
    }, 40_000, 200);
    expect(stopped.hot).toBe(0);
    const pids = processMembers(fleet.dataDir).filter((m) => m.pool === 'cold').map((m) => m.pid);
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
    const done = await hosted.jobs.waitForState(j.id, ['succeeded', 'failed'], 30_000);
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

  it('a spec change rolls the pool in stages: a ready member at every moment, then 2 current ready', async () => {
    await create('roll', '--target', '2');
    await waitFor('2 ready in roll', async () => ((await status('roll')).counts.ready === 2 ? true : undefined), 40_000, 200);
    const before = (await status('roll')).members.map((m) => m.id);
    const from = fleet.coordinator.lines.length;
    // Runners registered for members created by the roll (their names end with the member id).
    const newRunners = (lines: typeof fleet.coordinator.lines) =>
      new Set(lines.filter((l) => l.msg === 'runner registered' && l.pool === 'roll' && !before.some((id) => String(l.name).endsWith(id))).map((l) => String(l.runnerId)));
    let updated = false;
    const update = fleet.rbtk(['pool', 'update', 'roll', '--label', 'k=v']).then((r) => ((updated = true), r));
    const samples: HostedPoolStatus[] = [];
    const end = await waitFor('roll: 2 current ready', async () => {
      const s = await status('roll');
      samples.push(s);
      const done = updated && s.members.length === 2 && s.members.every((m) => m.current && m.state === 'ready' && !before.includes(m.id));
      return done ? s : undefined;
    }, 60_000, 100);
    expect((await update).code).toBe(0);
    for (const s of samples) expect(s.counts.ready, JSON.stringify(s.members)).toBeGreaterThanOrEqual(1);
    // Samples may miss a fast roll on a busy machine; the coordinator's log cannot: each old member is
    // removed only after a new one said hello (was ready).
    const lines = fleet.coordinator.lines.slice(from);
    const helloAt = lines.findIndex((l) => l.msg === 'runner hello' && l.pool === 'roll' && newRunners(lines).has(String(l.runnerId)));
    const firstRemoveAt = lines.findIndex((l) => l.msg === 'hosted pool member' && l.action === 'remove' && l.reason === 'outdated');
    expect(helloAt).toBeGreaterThanOrEqual(0);
    expect(firstRemoveAt).toBeGreaterThan(helloAt);
    expect(end.counts.ready).toBe(2);
    // It did roll: the members are new ones.
    expect(end.recentActions.filter((a) => a.action === 'remove' && a.reason === 'outdated')).toHaveLength(2);
  });

  it('two concurrent updates of different fields both stick', async () => {
    // Both requests are in (pool read) before either body arrives: the merge must happen at the write.
    const post = (body: object) => {
      const payload = JSON.stringify(body);
      const req = request(`${fleet.url}/v1/pools/roll/hosted`, {
        method: 'POST',
        headers: { authorization: `Bearer ${fleet.adminToken}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      });
      req.flushHeaders();
      const answered = new Promise<number>((resolve, reject) => {
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
      });
      return { send: () => req.end(payload), answered };
    };
    const a = post({ readyTtl: '20m' });
    const b = post({ onEmpty: 'overflow' });
    await new Promise((r) => setTimeout(r, 300));
    a.send();
    b.send();
    expect(await Promise.all([a.answered, b.answered])).toEqual([200, 200]);
    const shown = await fleet.rbtkJson<{ hosted: { readyTtl: string; onEmpty: string; labels: Record<string, string> } }>(['pool', 'show', 'roll']);
    expect(shown.hosted).toMatchObject({ readyTtl: '20m', onEmpty: 'overflow', labels: { k: 'v' } });
  });

  it('pool size prints the minimum target for a claim rate', async () => {
    const res = await fleet.rbtk(['pool', 'size', '--claims-per-min', '10', '--warmup', '90s']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.trim()).toBe('20'); // ceil(10 × (90 s + 30 s) / 60 s)
  });
});
