import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostedPoolStatus, Job } from '@rbtk/protocol';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Coordinator, startCoordinator } from '../packages/coordinator/src/index.js';
import { testLogger } from '../packages/coordinator/test/helpers.js';
import { adminApi, killMembers, memberPids } from './helpers/hosted.js';
import { waitFor } from './helpers/processes.js';

/*
 * Autoscale end to end: a real coordinator (in this process, so its clock is
 * a fake one the test moves on) with the process provider and real
 * rbtk-runner members. Four concurrent jobs raise the target to
 * ceil(4 × 1.25) = 5 and the pool fills to it; the target holds for 4 h of
 * fake time after the claims stop, across a coordinator restart on the same
 * data dir, and is lowered after.
 */

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

interface AutoscaleSql {
  target: number | null;
  below_since: number | null;
  samples: string;
}

describe('hosted autoscale (process provider, a fake clock)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rbtk-autoscale-'));
  const dataDir = join(dir, 'coordinator');
  let offset = 0;
  const now = () => Date.now() + offset;
  let coordinator: Coordinator;
  let admin = '';
  let port = 0;

  const start = async () => {
    coordinator = await startCoordinator({
      dataDir,
      host: '127.0.0.1',
      port,
      logger: testLogger(),
      now,
      // Hours of fake time pass between two heartbeats: nothing else may read that as a dead runner or a stale token.
      offlineAfterMs: DAY,
      reapAfterMs: 30 * DAY,
      tokenRotationMs: 30 * DAY,
      hostedReconcileIntervalMs: 500,
    });
    port = coordinator.port;
  };
  const call = adminApi(() => ({ url: coordinator.url, token: admin }));
  // What `rbtk pool show --json` prints under hostedStatus, and what `rbtk pool reconcile` forces.
  const status = () => call<HostedPoolStatus>('GET', '/v1/pools/auto/hosted');
  const reconcile = () => call<HostedPoolStatus>('POST', '/v1/pools/auto/reconcile');
  const settled = (ready: number) =>
    waitFor(`${ready} ready, nothing else`, async () => {
      const s = await status();
      return s.counts.ready === ready && s.members.length === ready ? s : undefined;
    }, 30_000, 100);
  /** The pool's autoscale row, read as the store left it (a second connection: WAL lets it read alongside). */
  const row = (): AutoscaleSql => {
    const db = new Database(join(dataDir, 'rbtk.db'), { readonly: true });
    try {
      return db.prepare('SELECT target, below_since, samples FROM pool_autoscale').get() as AutoscaleSql;
    } finally {
      db.close();
    }
  };

  beforeAll(async () => {
    await start();
    admin = readFileSync(coordinator.adminTokenFile, 'utf8').trim();
  });

  afterAll(async () => {
    await coordinator?.stop();
    killMembers(dataDir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('concurrent claims raise the target, it holds 4 h (across a restart) and is lowered after', async () => {
    await call('POST', '/v1/pools', {
      name: 'auto',
      type: 'hosted',
      hosted: {
        provider: 'process',
        target: 1,
        min: 1,
        max: 10,
        autoscale: true,
        // The four jobs get members at once (overflow), so they run together.
        onEmpty: 'overflow',
        return: 'ready',
        // Hours of fake time: no member may be recycled for its age meanwhile.
        readyTtl: '30d',
        warmingTimeout: '30d',
      },
    });
    expect((await settled(1)).target).toBe(1);

    const gate = join(dir, 'release');
    const jobs = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        call<Job>('POST', '/v1/jobs', { pool: 'auto', executor: { type: 'shell', command: ['sh', '-c', `while [ ! -f ${gate} ]; do sleep 0.1; done; echo ${i}`] } }),
      ),
    );
    // 4 concurrent claims → ceil(4 × 1.25) = 5 kept ready beside the 4 claimed.
    const full = await waitFor('4 claimed and 5 ready', async () => {
      const s = await status();
      return s.counts.claimed === 4 && s.counts.ready === 5 && s.counts.warming === 0 ? s : undefined;
    }, 40_000, 100);
    expect(full.target).toBe(5);
    expect(memberPids(dataDir)).toHaveLength(9);
    expect(row().target).toBe(5);

    writeFileSync(gate, '');
    for (const j of jobs) {
      const done = await waitFor(`job ${j.id} done`, async () => {
        const got = await call<Job>('GET', `/v1/jobs/${j.id}`);
        return got.state === 'succeeded' || got.state === 'failed' ? got : undefined;
      }, 20_000, 100);
      expect(done.state).toBe('succeeded');
    }
    // Back to ready (--return ready), then the excess over the target goes: 5 stay.
    expect((await settled(5)).target).toBe(5);

    // 31 min later the burst left the window: autoscale wants min (1) from now on, and its 4 h clock starts.
    offset += 31 * MIN;
    expect((await reconcile()).target).toBe(5);
    const below = row();
    expect(below.target).toBe(5);
    expect(below.below_since).not.toBeNull();
    const belowSince = below.below_since!;

    // Just short of 4 h below: still 5, and still 5 members.
    offset = belowSince + 4 * HOUR - 2 * MIN - Date.now();
    const held = await reconcile();
    expect(held.target).toBe(5);
    expect(held.members).toHaveLength(5);

    // A restart on the same data dir goes on from the store: not from --target 1, nor a fresh 4 h clock.
    const pids = memberPids(dataDir).sort();
    await coordinator.stop();
    await start();
    expect(coordinator.port).toBe(port);
    const adopted = await settled(5);
    expect(adopted.target).toBe(5);
    expect(memberPids(dataDir).sort()).toEqual(pids);
    expect(row()).toMatchObject({ target: 5, below_since: belowSince });

    // Past 4 h below: lowered to the most it wanted meanwhile (min, 1), and the excess goes.
    offset = belowSince + 4 * HOUR + MIN - Date.now();
    expect((await reconcile()).target).toBe(1);
    expect((await settled(1)).target).toBe(1);
    expect(row()).toMatchObject({ target: 1, below_since: null });
    expect(memberPids(dataDir)).toHaveLength(1);
  });
});
