import type { fdatasync } from 'node:fs';
import { ROUTES } from '@rbtk/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { WalSync } from '../src/store/sqlite/wal-sync.js';
import { TestCoordinator } from './helpers.js';
import { shellJob, SimRunner } from './jobs-helpers.js';

const realSync = WalSync.fdatasync;

/** An fdatasync that fails as a dying disk's does (EIO), for the calls after `okCalls`. */
function failingSync(okCalls = 0): typeof fdatasync {
  let calls = 0;
  return ((fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => {
    if (calls++ < okCalls) return realSync(fd, callback);
    setImmediate(() => callback(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5 })));
  }) as typeof fdatasync;
}

describe('a failed fdatasync of the WAL', () => {
  let tc: TestCoordinator | undefined;
  afterEach(async () => {
    WalSync.fdatasync = realSync;
    await tc?.stop();
    tc = undefined;
  });

  it('is fatal: the write is not acknowledged, onFatal hears the error once per failure, and nothing after it is answered as durable', async () => {
    const fatal: Error[] = [];
    tc = await TestCoordinator.start({ onFatal: (err) => fatal.push(err) });
    const runner = await SimRunner.start(tc, 'w');
    const ok = await tc.api('POST', ROUTES.jobs, { body: shellJob('w') });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    expect(fatal).toEqual([]);

    WalSync.fdatasync = failingSync();
    const refused = await tc.api('POST', ROUTES.jobs, { body: shellJob('w') });
    // The row may be in the WAL, but without a durable write it is not the client's job yet.
    expect(refused.status).toBeGreaterThanOrEqual(500);
    expect(refused.body?.job).toBeUndefined();
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ code: 'EIO' });
    runner.terminate();
  });
});
