import { describe, expect, it } from 'vitest';
import { Backoff } from '../src/backoff.js';
import { heartbeatDelay } from '../src/heartbeat.js';

describe('Backoff', () => {
  it('doubles its ceiling from 500 ms up to 30 s (full jitter under it)', () => {
    const top = new Backoff({ random: () => 0.999999 });
    const ceilings = Array.from({ length: 9 }, () => top.next() + 1);
    expect(ceilings).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    const bottom = new Backoff({ random: () => 0 });
    expect([bottom.next(), bottom.next()]).toEqual([0, 0]);
  });

  it('resets only after a connection that lived 30 s', () => {
    const b = new Backoff({ random: () => 0.5 });
    b.next();
    b.next();
    b.connectionEnded(29_999);
    expect(b.attempt).toBe(2);
    b.connectionEnded(30_000);
    expect(b.attempt).toBe(0);
    expect(b.next()).toBe(250);
  });
});

describe('heartbeatDelay', () => {
  it('is up to 10% early and never late', () => {
    expect(heartbeatDelay(15_000, () => 0)).toBe(15_000);
    expect(heartbeatDelay(15_000, () => 1)).toBe(13_500);
    for (let i = 0; i < 100; i++) {
      const d = heartbeatDelay(1_000);
      expect(d).toBeGreaterThanOrEqual(900);
      expect(d).toBeLessThanOrEqual(1_000);
    }
  });
});
