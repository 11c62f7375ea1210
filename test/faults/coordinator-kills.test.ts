import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '@rbtk/protocol';
import { Fleet } from '../helpers/fleet.js';
import { Jobs, shell } from '../helpers/jobs.js';
import { waitFor } from '../helpers/processes.js';
import { jobEvents, terminalEvents } from './fault-helpers.js';

const JOBS = 300;
const KILLS = 6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A small seeded generator (mulberry32), so a failing run can be replayed with RBTK_FAULT_SEED. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/*
 * The coordinator SIGKILLed again and again, at random moments, while a few
 * hundred short shell jobs flow through three real rbtk-runner daemons and a
 * submitter keeps submitting (retrying through the outages with an
 * idempotency key): every job ends exactly once, with its whole log.
 */
describe('the coordinator SIGKILLed repeatedly under load', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  const seed = Number(process.env.RBTK_FAULT_SEED ?? Date.now() % 1_000_000);
  const random = seeded(seed);

  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '6s', heartbeatInterval: '300ms' });
    jobs = new Jobs(fleet);
    expect((await fleet.rbtk(['pool', 'create', 'build'])).code).toBe(0);
    const ids = [];
    for (const name of ['r1', 'r2', 'r3']) {
      ids.push(await fleet.registerRunner('build', name, '--executor', 'shell', '--max-jobs', '4'));
      fleet.startRunner(name);
    }
    for (const id of ids) await waitFor('runner ONLINE', async () => (await fleet.runnerStatus(id)) === 'ONLINE');
  });

  afterAll(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  /** Submits job i, retrying while the coordinator is down; the key makes a retry of a committed submit a no-op. */
  async function submit(i: number): Promise<Job> {
    const spec = shell(`echo job-${i}; sleep 0.2; echo done-${i}`, { retries: 5, idempotencyKey: `kill-test-${i}` });
    for (;;) {
      try {
        return await jobs.submit(spec);
      } catch {
        await sleep(50);
      }
    }
  }

  it(`ends each of ${JOBS} jobs exactly once, logs whole, through ${KILLS} SIGKILLs`, { timeout: 120_000 }, async () => {
    console.log(`coordinator-kills: seed ${seed} (RBTK_FAULT_SEED replays it)`);
    const submitted = new Map<number, Job>();
    let next = 0;
    // Paced so that submits span the kills: ~40 jobs/s from 4 submitters.
    const submitter = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < JOBS) {
          const i = next++;
          submitted.set(i, await submit(i));
          await sleep(random() * 200);
        }
      }),
    );

    const atKill: number[] = [];
    while (atKill.length < KILLS) {
      await sleep(300 + random() * 1_400);
      atKill.push(submitted.size);
      await fleet.restartCoordinator('SIGKILL');
    }
    await submitter;
    console.log(`coordinator-kills: jobs submitted at each kill: ${atKill.join(', ')}`);

    const ids = [...submitted.values()].map((j) => j.id);
    expect(new Set(ids).size).toBe(JOBS);
    await waitFor('every job finished', async () => {
      const list = await fetch(`${fleet.url}/v1/jobs?limit=1000`, { headers: { authorization: `Bearer ${fleet.adminToken}` } });
      const all = (await list.json()) as Job[];
      return all.length === JOBS && all.every((j) => j.state === 'succeeded');
    }, 60_000, 250);

    const events = jobEvents(fleet);
    for (const [i, job] of submitted) {
      const terminal = terminalEvents(events.get(job.id));
      expect(terminal, `job ${i} (${job.id}) terminal events`).toEqual([expect.objectContaining({ state: 'succeeded' })]);
      expect(await jobs.log(job.id), `job ${i} log`).toBe(`job-${i}\ndone-${i}\n`);
    }
    // No job beyond those submitted (a retried submit never made a second one).
    expect(events.size).toBe(JOBS);
    const requeued = [...events.values()].filter((e) => e.some((x) => x.state === 'queued' && x.attempt > 0)).length;
    console.log(`coordinator-kills: ${requeued} job(s) requeued by the restarts`);
  });
});
