import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../src/duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['2s', 2_000],
    ['1.5s', 1_500],
    ['15m', 900_000],
    ['24h', 86_400_000],
    ['7d', 604_800_000],
    ['1h30m', 5_400_000],
    ['0', 0],
    ['0s', 0],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '10', '5 minutes', '-1s', '1x', 's', '1h 30m'])('refuses %j and says how to write it', (text) => {
    expect(() => parseDuration(text)).toThrow(/500ms, 2s, 15m or 24h/);
  });
});

describe('formatDuration', () => {
  it('round-trips through parseDuration', () => {
    for (const ms of [1, 999, 1_000, 1_500, 60_000, 90_000, 3_600_000, 86_400_000 + 1_000]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});
