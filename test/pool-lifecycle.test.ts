import type { AuditEntry, Pool, Runner } from '@rbtk/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from './helpers/fleet.js';
import { Jobs, shell } from './helpers/jobs.js';
import { waitFor, type Proc } from './helpers/processes.js';

/*
 * A pool's lifecycle end to end: pause (jobs queue, none starts), drain (every
 * runner DRAINING, running jobs finish), resume, and delete, refused while
 * runners are online or jobs in flight. Real coordinator, real runners.
 */
describe('pool pause, drain, resume and delete', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  const ids: string[] = [];
  const procs: Proc[] = [];
  const lc = (script: string) => shell(script, { pool: 'lc' });
  const statuses = async () => (await fleet.rbtkJson<Runner[]>(['runner', 'list', '--pool', 'lc'])).map((r) => r.status);

  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '5s', heartbeatInterval: '200ms' });
    jobs = new Jobs(fleet);
    expect((await fleet.rbtk(['pool', 'create', 'lc'])).code).toBe(0);
    for (const name of ['a', 'b']) {
      ids.push(await fleet.registerRunner('lc', name, '--executor', 'shell'));
      procs.push(fleet.startRunner(name));
    }
    for (const id of ids) await waitFor('runner ONLINE', async () => (await fleet.runnerStatus(id)) === 'ONLINE');
  });

  afterAll(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  it('pause: jobs queue but none starts, also across a coordinator restart; resume starts them', async () => {
    const paused = await fleet.rbtk(['pool', 'pause', 'lc']);
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toBe('pool lc paused: jobs queue but none starts until rbtk pool resume lc\n');
    expect((await fleet.rbtkJson<Pool>(['pool', 'show', 'lc'])).status).toBe('paused');
    // Its runners stay ONLINE: only the pool holds its jobs.
    expect(await statuses()).toEqual(['ONLINE', 'ONLINE']);

    const queued = [await jobs.submit(lc('echo one')), await jobs.submit(lc('echo two'))];
    await new Promise((r) => setTimeout(r, 1_000));
    for (const j of queued) expect(await jobs.get(j.id)).toMatchObject({ state: 'queued', attempt: 0 });

    // Stored: a restarted coordinator still holds the pool.
    await fleet.restartCoordinator();
    for (const id of ids) await waitFor('runner back', async () => (await fleet.rbtkJson<Runner>(['runner', 'show', id])).connected);
    await new Promise((r) => setTimeout(r, 500));
    for (const j of queued) expect((await jobs.get(j.id)).state).toBe('queued');

    const resumed = await fleet.rbtkJson<Pool>(['pool', 'resume', 'lc']);
    expect(resumed).toMatchObject({ name: 'lc', status: 'active' });
    for (const j of queued) expect(await jobs.waitForState(j.id, ['succeeded'], 10_000)).toMatchObject({ attempt: 1 });
  });

  it('delete is refused while runners are online', async () => {
    const refused = await fleet.rbtk(['pool', 'delete', 'lc']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('rbtk: pool lc still has 2 online runner(s) and 0 job(s) in flight — drain it first\n');
  });

  it('drain: every runner DRAINING, the running job finishes, nothing new starts, delete refused while it runs; resume', async () => {
    const running = await jobs.submit(lc('sleep 8; echo finished'));
    await jobs.waitForState(running.id, ['running']);

    const drained = await fleet.rbtkJson<Pool>(['pool', 'drain', 'lc']);
    expect(drained).toMatchObject({ status: 'draining', runners: { online: 0, draining: 2, offline: 0 } });
    const refused = await fleet.rbtk(['pool', 'delete', 'lc']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('rbtk: pool lc still has 0 online runner(s) and 1 job(s) in flight — drain it first\n');
    expect(await statuses()).toEqual(['DRAINING', 'DRAINING']);
    const shown = await fleet.rbtkJson<Runner>(['runner', 'show', ids[0]!]);
    expect(shown.drainReason).toBe('pool lc is draining');
    // The runners hear it over their sockets.
    for (const proc of procs) await proc.waitForLog((l) => l.msg === 'drained by the coordinator' && l.reason === 'pool lc is draining');

    const waiting = await jobs.submit(lc('echo after resume'));

    expect(await jobs.waitForState(running.id, ['succeeded'], 15_000)).toMatchObject({ attempt: 1, exitCode: 0 });
    await new Promise((r) => setTimeout(r, 500));
    expect(await jobs.get(waiting.id)).toMatchObject({ state: 'queued', attempt: 0 });

    const resumed = await fleet.rbtk(['pool', 'resume', 'lc']);
    expect(resumed.stdout).toBe('pool lc active: 2 runner(s) ONLINE\n');
    expect(await statuses()).toEqual(['ONLINE', 'ONLINE']);
    expect(await jobs.waitForState(waiting.id, ['succeeded'], 10_000)).toMatchObject({ attempt: 1 });
    for (const proc of procs) await proc.waitForLog((l) => l.msg === 'resumed by the coordinator');
  });

  it('every change is in the audit log', async () => {
    const rows = await fleet.rbtkJson<AuditEntry[]>(['audit', '--resource-type', 'pool']);
    const lifecycle = rows.filter((r) => r.resourceId === 'lc' && r.action !== 'pool.create');
    expect(lifecycle.map((r) => [r.action, r.details])).toEqual([
      ['pool.pause', { from: 'active', to: 'paused' }],
      ['pool.resume', { from: 'paused', to: 'active' }],
      ['pool.drain', { from: 'active', to: 'draining' }],
      ['pool.resume', { from: 'draining', to: 'active' }],
    ]);
    for (const r of lifecycle) expect(r.actor).toMatch(/^admin:/);
  });

  it('a drained, idle pool can be deleted: its runners are told and exit 77', async () => {
    expect((await fleet.rbtk(['pool', 'drain', 'lc'])).code).toBe(0);
    const deleted = await fleet.rbtk(['pool', 'delete', 'lc']);
    expect(deleted.code, deleted.stderr).toBe(0);
    for (const proc of procs) expect((await proc.exited).code).toBe(77);
    const rows = await fleet.rbtkJson<AuditEntry[]>(['audit', '--resource-type', 'pool']);
    expect(rows.at(-1)).toMatchObject({ action: 'pool.delete', resourceId: 'lc' });
  });
});
