import { afterEach, describe, expect, it } from 'vitest';
import {
  afterPass,
  BACKOFF_MAX_MS,
  backoffDelay,
  createAllowance,
  CreateBackoffs,
  NO_BACKOFF,
} from '../src/hosted/create-backoff.js';
import { createLogger } from '../src/log.js';

describe('create backoff (a fake clock)', () => {
  it('waits 1 s after a failed try, doubling up to 60 s', () => {
    expect([1, 2, 3, 4, 6, 7, 50].map(backoffDelay)).toEqual([1000, 2000, 4000, 8000, 32_000, BACKOFF_MAX_MS, BACKOFF_MAX_MS]);
    expect(BACKOFF_MAX_MS).toBe(60_000);
  });

  it('no limit until a try fails; then none until the step ends, then one try', () => {
    expect(createAllowance(NO_BACKOFF, 0)).toBeUndefined();
    const b1 = afterPass(NO_BACKOFF, 10_000, 8, 0);
    expect(b1).toEqual({ failures: 1, retryAt: 11_000 });
    expect(createAllowance(b1, 10_999)).toBe(0);
    expect(createAllowance(b1, 11_000)).toBe(1);
    const b2 = afterPass(b1, 11_000, 1, 0);
    expect(b2).toEqual({ failures: 2, retryAt: 13_000 });
  });

  it('a try that launched waits the same step (it has not said hello yet); a pass that tried nothing changes nothing', () => {
    const b = { failures: 3, retryAt: 5000 };
    expect(afterPass(b, 6000, 0, 1)).toEqual({ failures: 3, retryAt: 6000 + backoffDelay(3) });
    expect(afterPass(b, 6000, 0, 0)).toBe(b);
    expect(afterPass(NO_BACKOFF, 6000, 0, 8)).toBe(NO_BACKOFF);
  });
});

describe('CreateBackoffs', () => {
  let backoffs: CreateBackoffs | undefined;
  afterEach(() => backoffs?.stop());

  it('asks for a pass when a step ends, starts over on a spec change and ends when a member comes up', async () => {
    let now = 1_000_000;
    const retried: number[] = [];
    backoffs = new CreateBackoffs({ log: createLogger({ level: 'silent' }), now: () => now, retry: (id) => retried.push(id) });
    const pool = { id: 7, name: 'p', project: 'default' };
    const spec = { image: 'typo' };
    backoffs.record(pool, spec, 8, 0, 'No such image');
    expect(backoffs.of(7, spec)).toEqual({ failures: 1, retryAt: now + 1000 });
    // The timer is real (1 s): it asks for a pass of that pool.
    const deadline = Date.now() + 3000;
    while (retried.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(retried).toEqual([7]);

    now += 1000;
    backoffs.record(pool, spec, 1, 0, 'No such image');
    expect(backoffs.of(7, spec).failures).toBe(2);
    // A fixed image: tried at once.
    expect(backoffs.of(7, { image: 'fixed' })).toEqual(NO_BACKOFF);
    backoffs.record(pool, { image: 'fixed' }, 1, 0, 'still failing');
    backoffs.succeeded(7, { pool: 'p', project: 'default' });
    expect(backoffs.of(7, { image: 'fixed' })).toEqual(NO_BACKOFF);
  });
});
