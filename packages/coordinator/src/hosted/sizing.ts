import type { HostedPoolSpec, HostedSchedule, ScheduleEntry } from '@rbtk/protocol';

/*
 * What a hosted pool sizes to at an instant: a matching schedule entry, else
 * autoscale's target, else the spec's fixed one. Pure functions of their
 * inputs (the clock included), so tests drive them with a fake clock.
 */

/** Autoscale looks at the peak of concurrent claims over this window... */
export const AUTOSCALE_WINDOW_MS = 30 * 60_000;
/** ...keeps this much headroom above it... */
export const AUTOSCALE_HEADROOM = 1.25;
/** ...and lowers the target only once it was above what is wanted for this long (no flapping after a burst). */
export const AUTOSCALE_LOWER_AFTER_MS = 4 * 60 * 60_000;

/** Concurrent claims (members holding a job) at an instant. */
export interface ClaimSample {
  at: number;
  claimed: number;
}

/** What autoscale carries from one pass to the next. */
export interface AutoscaleState {
  target: number;
  /** Since when the wanted target has been below `target`, or null. */
  belowSince: number | null;
  /** The highest wanted target since belowSince: what it lowers to. */
  highestBelow: number;
}

const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, n));

/**
 * The peak of a step function given by samples (each holds until the next),
 * over [now - window, now]: the last sample at or before the window's start
 * counts, since its value held then.
 */
export function peakClaims(samples: readonly ClaimSample[], now: number, windowMs = AUTOSCALE_WINDOW_MS): number {
  const from = now - windowMs;
  let peak = 0;
  let before: ClaimSample | undefined;
  for (const s of samples) {
    if (s.at > now) continue;
    if (s.at <= from) {
      if (!before || s.at >= before.at) before = s;
      continue;
    }
    peak = Math.max(peak, s.claimed);
  }
  return Math.max(peak, before?.claimed ?? 0);
}

/**
 * Appends a sample, keeping the list as small as peakClaims allows: a window
 * always ends now, so it reaches a sample whenever it reaches an earlier one,
 * and a sample with a later one at least as high never sets the peak. Those
 * are dropped, the later one taking over their span (its start moves back to
 * theirs), so the claimed values strictly decrease along the list: at most
 * max + 1 entries, the same peak for every window, and a pass that sees the
 * same count as before leaves the list as it was (nothing new to persist).
 */
export function pushSample(samples: ClaimSample[], sample: ClaimSample): void {
  let at = sample.at;
  while (samples.length > 0 && samples[samples.length - 1]!.claimed <= sample.claimed) at = Math.min(at, samples.pop()!.at);
  samples.push({ at, claimed: sample.claimed });
}

/** Drops samples no window will look at again (keeps the last one before the window). */
export function pruneSamples(samples: ClaimSample[], now: number, windowMs = AUTOSCALE_WINDOW_MS): void {
  const from = now - windowMs;
  let lastOld = -1;
  for (let i = 0; i < samples.length; i++) if (samples[i]!.at <= from) lastOld = i;
  if (lastOld > 0) samples.splice(0, lastOld);
}

/** clamp(max(min, ceil(peak × 1.25)), min, max). */
export function wantedTarget(peak: number, min: number, max: number): number {
  return clamp(Math.max(min, Math.ceil(peak * AUTOSCALE_HEADROOM)), min, max);
}

/**
 * One autoscale step: up at once to what is wanted; down only after the
 * wanted target stayed below the current one for 4 h, and then to the highest
 * it wanted meanwhile. `prev` null: the first step starts from the spec's target.
 */
export function autoscaleStep(
  spec: Pick<HostedPoolSpec, 'target' | 'min' | 'max'>,
  prev: AutoscaleState | null,
  samples: readonly ClaimSample[],
  now: number,
): AutoscaleState {
  const current = clamp(prev?.target ?? spec.target, spec.min, spec.max);
  const wanted = wantedTarget(peakClaims(samples, now), spec.min, spec.max);
  if (wanted >= current) return { target: wanted, belowSince: null, highestBelow: 0 };
  const belowSince = prev?.belowSince ?? now;
  const highestBelow = prev?.belowSince == null ? wanted : Math.max(prev.highestBelow, wanted);
  if (now - belowSince >= AUTOSCALE_LOWER_AFTER_MS) return { target: highestBelow, belowSince: null, highestBelow: 0 };
  return { target: current, belowSince, highestBelow };
}

const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const;
const formats = new Map<string, Intl.DateTimeFormat>();

/** The weekday and minute of the day at `now` in the zone. */
export function zonedClock(now: number, timeZone: string): { day: (typeof WEEKDAYS)[number]; minute: number } {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'long', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formats.set(timeZone, f);
  }
  const parts = Object.fromEntries(f.formatToParts(new Date(now)).map((p) => [p.type, p.value]));
  return { day: String(parts.weekday).toLowerCase() as (typeof WEEKDAYS)[number], minute: Number(parts.hour) * 60 + Number(parts.minute) };
}

const minuteOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** Whether the entry holds at `now`. A range crossing midnight belongs to the day it starts on. */
export function entryMatches(entry: ScheduleEntry, now: number): boolean {
  const match = entry.match;
  if (!match) return true;
  const { day, minute } = zonedClock(now, match.timezone);
  if (!match.time) return !match.day || match.day.includes(day);
  const [from, to] = [minuteOf(match.time[0]), minuteOf(match.time[1])];
  if (from <= to) return minute >= from && minute < to && (!match.day || match.day.includes(day));
  // Crosses midnight: the evening part on a listed day, or the morning part on the day after one.
  if (minute >= from) return !match.day || match.day.includes(day);
  if (minute < to) {
    const yesterday = WEEKDAYS[(WEEKDAYS.indexOf(day) + 6) % 7]!;
    return !match.day || match.day.includes(yesterday);
  }
  return false;
}

/** The first entry that holds at `now`, or null. */
export function matchSchedule(schedule: HostedSchedule | null, now: number): ScheduleEntry | null {
  for (const entry of schedule ?? []) if (entryMatches(entry, now)) return entry;
  return null;
}

export interface PoolSize {
  /** Members to keep (ready or stopped, not counting claimed ones). */
  target: number;
  /** Of those, how many run hot; the rest are stopped. */
  hot: number;
  /** The schedule entry that set them, or null. */
  schedule: string | null;
}

/** The pool's size now: a matching schedule entry (hot + stopped, capped at max), else autoscale's or the fixed target. */
export function poolSize(spec: HostedPoolSpec, autoscaled: number | null, now: number): PoolSize {
  const entry = matchSchedule(spec.schedule, now);
  if (entry) {
    const target = Math.min(spec.max, entry.hot + entry.stopped);
    return { target, hot: Math.min(entry.hot, target), schedule: entry.name };
  }
  const target = spec.autoscale && autoscaled !== null ? autoscaled : spec.target;
  return { target, hot: spec.mode === 'hot' ? target : 0, schedule: null };
}
