import { describe, expect, it } from 'vitest';
import { retryWithBackoff } from '../src/retry.js';
import { testLogger } from './helpers.js';

describe('retryWithBackoff', () => {
  it('waits longer after each failure, up to the most, and stops once a try succeeds', async () => {
    const at: number[] = [];
    const start = performance.now();
    const done = await retryWithBackoff(
      async () => {
        at.push(performance.now() - start);
        if (at.length < 5) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      },
      { log: testLogger(), what: 'test write', signal: new AbortController().signal, firstDelayMs: 20, maxDelayMs: 40 },
    );
    expect(done).toBe(true);
    expect(at).toHaveLength(5);
    // Waits of 20, 40, 40, 40, 40 ms (±10% jitter, plus timer lateness); without the cap the last would be 320.
    const waits = at.map((t, i) => t - (at[i - 1] ?? 0));
    expect(waits[0]).toBeGreaterThanOrEqual(17);
    for (const wait of waits.slice(1)) expect(wait).toBeGreaterThanOrEqual(35);
    expect(waits[4]).toBeLessThan(200);
  });

  it('stops when its signal aborts, during a wait or a try, and tries no more', async () => {
    const stop = new AbortController();
    let tries = 0;
    const done = retryWithBackoff(
      async () => {
        tries++;
        if (tries === 3) stop.abort(); // the coordinator stops while this try runs
        throw new Error('still full');
      },
      { log: testLogger(), what: 'test write', signal: stop.signal, firstDelayMs: 5, maxDelayMs: 5 },
    );
    expect(await done).toBe(false);
    expect(tries).toBe(3);
    await new Promise((r) => setTimeout(r, 50));
    expect(tries).toBe(3);

    const idle = new AbortController();
    let called = false;
    const waiting = retryWithBackoff(
      async () => {
        called = true;
      },
      { log: testLogger(), what: 'test write', signal: idle.signal, firstDelayMs: 60_000 },
    );
    idle.abort();
    expect(await waiting).toBe(false);
    expect(called).toBe(false);
  });
});
