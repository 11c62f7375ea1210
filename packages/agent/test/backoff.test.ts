import { describe, expect, it } from 'vitest';
import { Backoff } from '../src/backoff.js';
import { heartbeatDelay, runHeartbeatLoop, staleAfter } from '../src/heartbeat.js';

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

describe('staleAfter', () => {
  it('leaves an interval and a reconnect before offlineAfter, and rides out one late ack', () => {
    // Defaults (15 s, 60 s): two lost acks, noticed with 22 s to reconnect before OFFLINE; it used to be 60 s.
    expect(staleAfter(15_000, 60_000)).toBe(37_500);
    expect(staleAfter(1_000, 5_000)).toBe(2_500);
    // Short intervals (tests): 2 s at least, so a loaded host's late ack costs no reconnect...
    expect(staleAfter(200, 6_000)).toBe(2_000);
    // ...unless offlineAfter leaves no room for it.
    expect(staleAfter(200, 3_000)).toBe(1_800);
    // Never below 1.5 intervals, however short offlineAfter is (nothing can reconnect in time then).
    expect(staleAfter(30, 200)).toBe(45);
  });
});

describe('runHeartbeatLoop', () => {
  it('notices a silent coordinator between heartbeats, not at the next one', async () => {
    const started = Date.now();
    const end = await runHeartbeatLoop(
      { send: () => true, intervalMs: () => 2_000, lastAckAt: () => started, staleAfterMs: () => 300 },
      new AbortController().signal,
    );
    expect(end).toBe('stale');
    // Checked every quarter interval (500 ms): well before the first heartbeat at 1.8-2 s.
    expect(Date.now() - started).toBeLessThan(1_200);
  });
});
