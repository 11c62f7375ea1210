import { HostedPoolCreate, type HostedPoolCreateInput, HostedSchedule, type HostedPoolSpec } from '@rbtk/protocol';
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
} from '../src/hosted/sizing.js';

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

  it('recycles a stopped member on its ready TTL', () => {
    const s = spec({ target: 1, mode: 'stopped', readyTtl: '1s' });
    expect(plan(s, [member({ id: 'old', state: 'stopped', stateChangedAt: 0 })]).remove).toEqual([{ id: 'old', reason: 'ready_ttl' }]);
  });
});
