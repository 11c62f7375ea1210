import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, type Job, type Pool } from '@rbtk/protocol';
import { Fleet } from '../helpers/fleet.js';
import { Jobs, shell } from '../helpers/jobs.js';
import { waitFor } from '../helpers/processes.js';
import { fillDisk, mountTmpfs, requireTmpfs, unmount } from '../helpers/tmpfs.js';

const TMPFS_SIZE = '4m';

const noMount = await requireTmpfs('disk-full fault test');

/*
 * The coordinator's data directory on a 4 MiB tmpfs, filled up while jobs are
 * submitted: new work is refused with 507 disk_full, what was stored stays
 * readable, the coordinator keeps running, and once the filler is deleted new
 * submits go through and run on the runner again.
 */
describe.skipIf(noMount !== undefined)('the disk under the coordinator database fills up', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  let runnerId: string;

  beforeAll(async () => {
    fleet = await Fleet.create();
    await mkdir(fleet.dataDir, { recursive: true });
    await mountTmpfs(fleet.dataDir, TMPFS_SIZE);
    await fleet.startCoordinator({ offlineAfter: '20s', heartbeatInterval: '200ms' });
    jobs = new Jobs(fleet);
    expect((await fleet.rbtk(['pool', 'create', 'build'])).code).toBe(0);
    runnerId = await fleet.registerRunner('build', 'r1', '--executor', 'shell');
    fleet.startRunner('r1');
    await waitFor('r1 ONLINE', async () => (await fleet.runnerStatus(runnerId)) === 'ONLINE');
  });

  afterAll(async () => {
    if (!fleet) return;
    const leftover = await fleet.procs.stopAll();
    await unmount(fleet.dataDir);
    expect([...leftover, ...(await fleet.close())]).toEqual([]);
  });

  const post = (path: string, body: unknown) =>
    fetch(`${fleet.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fleet.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('refuses new work with disk_full, keeps what it had, and recovers when space returns', async () => {
    const before = await jobs.submit(shell('echo before-the-fill'));
    expect((await jobs.waitForState(before.id, ['succeeded'])).exitCode).toBe(0);

    const filler = join(fleet.dataDir, 'filler');
    await fillDisk(filler);
    // SQLite may still have room in pages it already holds: keep submitting until the disk bites.
    let refused: Response | undefined;
    for (let i = 0; i < 2_000 && !refused; i++) {
      const res = await post('/v1/jobs', shell(`echo during-${i}`));
      if (res.status === 201) continue;
      refused = res;
    }
    expect(refused?.status).toBe(507);
    const { error } = (await refused!.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe(ErrorCode.DiskFull);
    expect(error.message).toMatch(/disk is full/);
    // Other writes say the same.
    const pool = await post('/v1/pools', { name: 'another' });
    expect(pool.status).toBe(507);
    expect(((await pool.json()) as { error: { code: string } }).error.code).toBe(ErrorCode.DiskFull);

    // What it had is still there, and it still serves.
    expect(await jobs.get(before.id)).toMatchObject({ state: 'succeeded', exitCode: 0 });
    expect(await jobs.log(before.id)).toBe('before-the-fill\n');
    expect((await fleet.rbtkJson<Pool[]>(['pool', 'list'])).map((p) => p.name)).toEqual(['build']);
    expect(fleet.coordinator.running).toBe(true);
    const cli = await fleet.rbtk(['job', 'submit', '--pool', 'build', '--', 'true']);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toMatch(/disk is full/);

    // Space returns: new work is taken and runs again.
    await rm(filler);
    const after = await waitFor('a submit accepted again', async () => {
      const res = await post('/v1/jobs', shell('echo after-the-fill'));
      return res.status === 201 ? ((await res.json()) as Job) : undefined;
    }, 10_000, 200);
    const done = await jobs.waitForState(after.id, ['succeeded'], 30_000);
    expect(done.exitCode).toBe(0);
    expect(await jobs.log(after.id)).toBe('after-the-fill\n');
    expect(fleet.coordinator.running).toBe(true);
  });
});
