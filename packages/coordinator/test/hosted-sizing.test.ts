import { HostedPoolCreate, type HostedPoolCreateInput, HostedSchedule, type HostedPoolSpec } from '@rbtk/protocol';
import fc from 'fast-check';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type PlanMember, planReconcile } from '../src/hosted/reconciler.js';
import {
  AUTOSCALE_LOWER_AFTER_MS,
  type AutoscaleState,
  autoscaleStep,
  type ClaimSample,
  matchSchedule,
  peakClaims,
  poolSize,
  pruneSamples,
  pushSample,
} from '../src/hosted/sizing.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { tempDir } from './helpers.js';

const spec = (over: Partial<HostedPoolCreateInput> = {}): HostedPoolSpec =>
  HostedPoolCreate.parse({ provider: 'process', target: 2, min: 1, max: 10, ...over });

const MIN = 60_000;
const HOUR = 60 * MIN;

describe('autoscale (a fake clock)', () => {
  it('peak of concurrent claims over the last 30 min, the value holding at the window start included', () => {
    const samples: ClaimSample[] = [
      { at: 0, claimed: 7 },
      { at: 10 * MIN, claimed: 3 },
      { at: 20 * MIN, claimed: 5 },
      { at: 45 * MIN, claimed: 1 },
    ];
    expect(peakClaims(samples, 25 * MIN)).toBe(7);
    expect(peakClaims(samples, 41 * MIN)).toBe(5); // 7 ended at 10 min, outside; 3 held at 11 min
    expect(peakClaims(samples, 80 * MIN)).toBe(1);
    pruneSamples(samples, 80 * MIN);
    expect(samples).toEqual([{ at: 45 * MIN, claimed: 1 }]);
  });

  it('goes up at once to ceil(peak × 1.25) within min..max', () => {
    const s = spec({ target: 2, min: 1, max: 10 });
    expect(autoscaleStep(s, null, [{ at: 0, claimed: 5 }], MIN).target).toBe(7); // ceil(6.25)
    expect(autoscaleStep(s, null, [{ at: 0, claimed: 40 }], MIN).target).toBe(10); // max
    expect(autoscaleStep(spec({ target: 3, min: 3 }), null, [], MIN).target).toBe(3); // min
  });

  it('lowers only after 4 h below, to the highest it wanted meanwhile', () => {
    const s = spec({ target: 2, min: 1, max: 10 });
    let state: AutoscaleState = autoscaleStep(s, null, [{ at: 0, claimed: 8 }], 0);
    expect(state.target).toBe(10);
    const samples: ClaimSample[] = [
      { at: 0, claimed: 8 },
      { at: 1 * MIN, claimed: 0 },
      { at: 2 * HOUR, claimed: 4 },
      { at: 2 * HOUR + MIN, claimed: 0 },
    ];
    const at = (t: number) => samples.filter((x) => x.at <= t);
    // 31 min in: the 8 left the window; wanted is min (1), but it stays at 10.
    state = autoscaleStep(s, state, at(31 * MIN), 31 * MIN);
    expect(state).toMatchObject({ target: 10, belowSince: 31 * MIN });
    // A burst of 4 at 2 h wants 5: still below 10, the clock keeps running.
    state = autoscaleStep(s, state, at(2 * HOUR + 2 * MIN), 2 * HOUR + 2 * MIN);
    expect(state).toMatchObject({ target: 10, belowSince: 31 * MIN, highestBelow: 5 });
    state = autoscaleStep(s, state, at(31 * MIN + AUTOSCALE_LOWER_AFTER_MS - 1), 31 * MIN + AUTOSCALE_LOWER_AFTER_MS - 1);
    expect(state.target).toBe(10);
    state = autoscaleStep(s, state, at(31 * MIN + AUTOSCALE_LOWER_AFTER_MS), 31 * MIN + AUTOSCALE_LOWER_AFTER_MS);
    expect(state).toMatchObject({ target: 5, belowSince: null });
    // Going up again resets the clock.
    state = autoscaleStep(s, state, [{ at: 6 * HOUR, claimed: 6 }], 6 * HOUR);
    expect(state).toMatchObject({ target: 8, belowSince: null });
  });
});

describe('claim samples kept for autoscale', () => {
  it('pushSample keeps only what can set a peak: claimed strictly decreasing, the same peak for every window', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5 * MIN }), fc.integer({ min: 0, max: 12 })), { maxLength: 60 }), fc.integer({ min: 0, max: 3 * HOUR }), (steps, later) => {
        const raw: ClaimSample[] = [];
        const kept: ClaimSample[] = [];
        let at = 0;
        for (const [gap, claimed] of steps) {
          at += gap;
          raw.push({ at, claimed });
          pushSample(kept, { at, claimed });
          pruneSamples(kept, at);
        }
        for (let i = 1; i < kept.length; i++) expect(kept[i]!.claimed).toBeLessThan(kept[i - 1]!.claimed);
        // Any instant from the last sample on (windows end now, and now only moves on).
        for (const now of [at, at + later, at + 29 * MIN, at + 31 * MIN]) expect(peakClaims(kept, now)).toBe(peakClaims(raw, now));
      }),
      { numRuns: 300 },
    );
  });

  it('pushing the same count again changes nothing (a quiet pool has nothing new to persist)', () => {
    const kept: ClaimSample[] = [];
    pushSample(kept, { at: 0, claimed: 4 });
    pushSample(kept, { at: MIN, claimed: 0 });
    const before = JSON.stringify(kept);
    pushSample(kept, { at: 2 * MIN, claimed: 0 });
    pushSample(kept, { at: 3 * MIN, claimed: 0 });
    expect(JSON.stringify(kept)).toBe(before);
    // A higher count takes over the spans it dominates.
    pushSample(kept, { at: 4 * MIN, claimed: 5 });
    expect(kept).toEqual([{ at: 0, claimed: 5 }]);
  });

  it('the store keeps the autoscale state and samples of a pool, and drops them with the pool', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'c.db');
    try {
      let store = SqliteStore.open(file);
      await store.projects.create({ name: 'default', createdAt: 0 });
      const audit = { at: 0, actor: 't', action: 'pool.create' as const, resourceType: 'pool' as const, resourceId: 'p', project: 'default', details: {} };
      const pool = (await store.pools.create(
        { project: 'default', name: 'p', type: 'hosted', status: 'active', tags: {}, airgapped: false, allowNonAirgappedJobs: false, dockerNetwork: null, createdAt: 0, updatedAt: 0, hostedSpec: spec({ autoscale: true }) },
        audit,
      ))!;
      const row = { poolId: pool.id, state: { target: 5, belowSince: 31 * MIN, highestBelow: 1 }, samples: [{ at: 0, claimed: 4 }, { at: MIN, claimed: 0 }] };
      await store.hosted.saveAutoscale(row, MIN);
      await store.hosted.saveAutoscale({ ...row, state: { ...row.state, highestBelow: 2 } }, 2 * MIN);
      await store.close();
      store = SqliteStore.open(file);
      expect(await store.hosted.autoscaleRows()).toEqual([{ ...row, state: { ...row.state, highestBelow: 2 } }]);
      // A pool that does not autoscale keeps its samples with no state.
      await store.hosted.saveAutoscale({ ...row, state: null }, 3 * MIN);
      expect((await store.hosted.autoscaleRows())[0]!.state).toBeNull();
      expect(await store.pools.delete('default', 'p', { ...audit, action: 'pool.delete' })).toMatchObject({ kind: 'deleted' });
      expect(await store.hosted.autoscaleRows()).toEqual([]);
      // A pass finishing after its pool went writes nothing.
      await store.hosted.saveAutoscale(row, 4 * MIN);
      expect(await store.hosted.autoscaleRows()).toEqual([]);
      await store.close();
    } finally {
      cleanup();
    }
  });
});

describe('schedules (Intl time zones, a fake clock)', () => {
  const schedule = HostedSchedule.parse([
    { name: 'business-hours', match: { day: ['monday', 'tuesday', 'wednesday', 'thursday', 'friday'], time: ['08:00', '18:00'], timezone: 'Europe/Paris' }, hot: 4, stopped: 2 },
    { name: 'nightly', match: { time: ['22:00', '02:00'], timezone: 'America/New_York', day: ['saturday'] }, hot: 1 },
    { name: 'default', stopped: 1 },
  ]);
  // 2024-07-01 is a Monday; Paris is UTC+2 in July, New York UTC-4.
  const utc = (iso: string) => Date.parse(`${iso}Z`);

  it('matches days and a time range in the entry timezone; the first match wins; no match entry always holds', () => {
    expect(matchSchedule(schedule, utc('2024-07-01T06:00:00'))?.name).toBe('business-hours'); // 08:00 Paris
    expect(matchSchedule(schedule, utc('2024-07-01T05:59:00'))?.name).toBe('default'); // 07:59 Paris
    expect(matchSchedule(schedule, utc('2024-07-01T16:00:00'))?.name).toBe('default'); // 18:00 Paris: range is [from, to)
    expect(matchSchedule(schedule, utc('2024-07-06T10:00:00'))?.name).toBe('default'); // Saturday
  });

  it('a range crossing midnight belongs to the day it starts on', () => {
    // Saturday 23:00 New York = Sunday 03:00 UTC; Sunday 01:00 New York is still Saturday night's range.
    expect(matchSchedule(schedule, utc('2024-07-07T03:00:00'))?.name).toBe('nightly');
    expect(matchSchedule(schedule, utc('2024-07-07T05:59:00'))?.name).toBe('nightly'); // Sunday 01:59 NY
    expect(matchSchedule(schedule, utc('2024-07-07T06:00:00'))?.name).toBe('default'); // 02:00 NY: over
    expect(matchSchedule(schedule, utc('2024-07-08T03:00:00'))?.name).toBe('default'); // Sunday 23:00 NY: not a Saturday night
  });

  it('a matching entry sizes the pool to hot + stopped (capped at max), else the fixed or autoscaled target', () => {
    const s = spec({ target: 3, max: 5, schedule });
    expect(poolSize(s, null, utc('2024-07-01T06:00:00'))).toEqual({ target: 5, hot: 4, schedule: 'business-hours' });
    expect(poolSize(s, null, utc('2024-07-06T10:00:00'))).toEqual({ target: 1, hot: 0, schedule: 'default' });
    expect(poolSize(spec({ target: 3, max: 5 }), 4, 0)).toEqual({ target: 3, hot: 3, schedule: null });
    expect(poolSize(spec({ target: 3, max: 5, autoscale: true }), 4, 0)).toEqual({ target: 4, hot: 4, schedule: null });
    expect(poolSize(spec({ target: 3, max: 5, mode: 'stopped' }), null, 0)).toEqual({ target: 3, hot: 0, schedule: null });
  });

  it('refuses an unknown timezone and a bad time', () => {
    expect(() => HostedSchedule.parse([{ name: 'x', match: { timezone: 'Mars/Olympus' } }])).toThrow(/unknown timezone/);
    expect(() => HostedSchedule.parse([{ name: 'x', match: { time: ['8:00', '18:00'] } }])).toThrow(/HH:MM/);
  });
});

describe('stopped mode in the plan', () => {
  let seq = 0;
  const member = (over: Partial<PlanMember> = {}): PlanMember => ({
    id: `m${++seq}`,
    state: 'ready',
    specHash: 'h',
    createdAt: 0,
    stateChangedAt: 0,
    busy: false,
    ...over,
  });
  const plan = (s: HostedPoolSpec, members: PlanMember[], extra: { hot?: number; queuedJobs?: number } = {}) =>
    planReconcile({ spec: s, specHash: 'h', members, now: 1000, queuedJobs: extra.queuedJobs ?? 0, draining: false, hot: extra.hot });

  it('stops ready idle members beyond the hot count, never a busy or just-woken one', () => {
    const s = spec({ target: 3, mode: 'stopped' });
    const members = [
      member({ id: 'a', stateChangedAt: 1 }),
      member({ id: 'b', stateChangedAt: 2, woken: true }),
      member({ id: 'c', state: 'stopped' }),
      member({ id: 'busy', state: 'claimed', busy: true }),
    ];
    expect(plan(s, members)).toMatchObject({ stop: ['a'], start: [], create: 0 });
  });

  it('starts stopped members when fewer run than the hot count, or for waiting jobs', () => {
    const s = spec({ target: 3 });
    const members = [member({ id: 'r' }), member({ id: 's1', state: 'stopped', stateChangedAt: 1 }), member({ id: 's2', state: 'stopped', stateChangedAt: 2 })];
    expect(plan(s, members, { hot: 2 })).toMatchObject({ stop: [], start: ['s2'] });
    expect(plan(spec({ target: 3, mode: 'stopped' }), members.slice(1), { queuedJobs: 1 })).toMatchObject({ start: ['s2'] });
  });

  it('keeps a ready member up while a job waits for it (its dispatch is on its way), and starts none for that job', () => {
    const s = spec({ target: 3, mode: 'stopped' });
    const members = [member({ id: 'r1', stateChangedAt: 1 }), member({ id: 'r2', stateChangedAt: 2 }), member({ id: 's', state: 'stopped' })];
    expect(plan(s, members, { queuedJobs: 1 })).toMatchObject({ stop: ['r1'], start: [] });
    expect(plan(s, members, { queuedJobs: 2 })).toMatchObject({ stop: [], start: [] });
    expect(plan(s, members, { queuedJobs: 3 })).toMatchObject({ stop: [], start: ['s'] });
  });

  it('recycles a stopped member on its ready TTL: its replacement first, then the old one', () => {
    const s = spec({ target: 1, mode: 'stopped', readyTtl: '1s' });
    const old = member({ id: 'old', state: 'stopped', stateChangedAt: 0 });
    // It stays until a current member is up: the pool never has fewer than its target meanwhile.
    expect(plan(s, [old])).toMatchObject({ remove: [], create: 1 });
    expect(plan(s, [old, member({ id: 'new', state: 'stopped', stateChangedAt: 999 })]).remove).toEqual([{ id: 'old', reason: 'ready_ttl' }]);
  });
});
