import { mkdtemp, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { CloseCode, ErrorCode, ROUTES } from '@rbtk/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { fillDisk, mountTmpfs, requireTmpfs, unmount } from '../../../test/helpers/tmpfs.js';
import { createLogger } from '../src/index.js';
import { eventually, TestCoordinator } from './helpers.js';
import { shellJob, SimRunner } from './jobs-helpers.js';

const noMount = await requireTmpfs('revoke on a full disk');

/** Jobs running on the revoked runner; each row fills most of a 4 KiB page, so their requeue writes a page each. */
const JOBS = 80;
const ROW_PAD = 'p'.repeat(3500);
/** Room left for the revoke's own commit (a handful of pages), far less than the requeue's ~80 pages. */
const ROOM_FOR_REVOKE = 128 * 1024;

/*
 * The data directory on a small tmpfs. A runner with jobs running is revoked
 * when the disk has room for the revoke's commit but not for the requeue of its
 * jobs: the revoke stands, its jobs stay running on a runner that is gone while
 * the store refuses, and once space returns they are requeued without a
 * restart (nothing else would ever requeue them: the runner is deleted, so
 * liveness never names it again).
 */
describe.skipIf(noMount !== undefined)('revoking a runner whose requeue the store refuses', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('answers the revoke, keeps trying the requeue, and requeues the jobs once the disk has room', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'rbtk-revoke-full-'));
    cleanups.push(() => rmdir(dataDir));
    await mountTmpfs(dataDir, '16m');
    cleanups.push(() => unmount(dataDir));
    const lines: string[] = [];
    const logs = new PassThrough();
    logs.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    const tc = await TestCoordinator.start({
      dataDir,
      offlineAfterMs: 60_000,
      logger: createLogger({ level: 'info', destination: logs, pretty: false }),
    });
    cleanups.push(() => tc.stop());
    const doomed = await SimRunner.start(tc, 'build', { name: 'doomed', maxJobs: JOBS });
    cleanups.push(() => doomed.terminate());

    const submit = (pad: string) =>
      tc.api('POST', ROUTES.jobs, { body: shellJob('build', { retries: 1, executor: { type: 'shell', command: ['true'], env: { PAD: pad } } }) });
    const ids: string[] = [];
    for (let i = 0; i < JOBS; i++) {
      const res = await submit(ROW_PAD);
      expect(res.status).toBe(201);
      ids.push(res.body.id);
      doomed.started(await doomed.take());
    }
    const inState = async (state: string) =>
      ((await tc.api('GET', `${ROUTES.jobs}?state=${state}&limit=1000`)).body as { id: string }[]).map((j) => j.id);
    await eventually(async () => ((await inState('running')).length === JOBS ? true : null));

    // The disk fills up, but for a reserve; then SQLite's own room (the WAL it may reuse) is written full.
    const reserve = path.join(dataDir, 'reserve');
    const filler = path.join(dataDir, 'filler');
    await fillDisk(reserve, ROOM_FOR_REVOKE);
    await fillDisk(filler);
    let refused: number | undefined;
    for (let i = 0; i < 1_000 && refused === undefined; i++) {
      const res = await submit('f'.repeat(40_000));
      if (res.status !== 201) refused = res.status;
    }
    expect(refused).toBe(507);
    await rm(reserve);

    // The revoke is committed and answered; the requeue is not taken.
    const revoke = await tc.api('POST', ROUTES.runnerRevoke(doomed.runnerId));
    expect(revoke.status, JSON.stringify(revoke.body)).toBe(200);
    expect(await doomed.closed).toBe(CloseCode.Revoked);
    expect((await tc.api('GET', ROUTES.runner(doomed.runnerId))).body.error.code).toBe(ErrorCode.NotFound);
    expect(lines.some((l) => l.includes("requeue of a revoked runner's jobs failed: trying again"))).toBe(true);
    await eventually(async () => (lines.some((l) => l.includes("requeue of a revoked runner's jobs failed again")) ? true : null), 5_000);
    expect((await inState('running')).sort()).toEqual([...ids].sort());

    // Space returns: the next try requeues every job, and another runner takes the first.
    await rm(filler);
    await eventually(async () => ((await inState('running')).length === 0 ? true : null), 20_000);
    for (const id of ids) {
      expect((await tc.api('GET', ROUTES.job(id))).body).toMatchObject({ state: 'queued', reason: 'runner_revoked', runnerId: null, attempt: 1 });
    }
    expect(lines.some((l) => l.includes("requeue of a revoked runner's jobs: done after retrying"))).toBe(true);
    const next = await SimRunner.start(tc, 'build', { name: 'next' });
    cleanups.push(() => next.terminate());
    expect(await next.take()).toMatchObject({ jobId: ids[0], attempt: 2 });
  });
});
