import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../helpers/fleet.js';
import { Jobs, shell } from '../helpers/jobs.js';
import { waitFor } from '../helpers/processes.js';
import { jobEvents, terminalEvents } from './fault-helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Alive, not a zombie waiting for a reaper that may not exist in a container. */
async function processAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/*
 * rbtk-runner SIGKILLed mid-job (no chance to stop anything) and started
 * again: the shell job's orphaned process group is killed, the lost attempt is
 * reported failed and retried, and the job ends exactly once.
 * (The docker executor's version, leftover containers removed, is in jobs-docker.test.ts.)
 */
describe('an agent SIGKILLed mid-job and restarted', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  let runnerId: string;

  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '5s', heartbeatInterval: '200ms' });
    jobs = new Jobs(fleet);
    expect((await fleet.rbtk(['pool', 'create', 'build'])).code).toBe(0);
    runnerId = await fleet.registerRunner('build', 'r1', '--executor', 'shell');
    fleet.startRunner('r1');
    await waitFor('r1 ONLINE', async () => (await fleet.runnerStatus(runnerId)) === 'ONLINE');
  });

  afterAll(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  // Second case: the kill came after the job started but before its process group was on disk.
  it.each([
    { case: 'its process group in the spool', pgidOnDisk: true },
    { case: 'no process group in the spool (found by RBTK_JOB_ID)', pgidOnDisk: false },
  ])('kills the orphaned shell process group and ends the job exactly once: $case', async ({ pgidOnDisk }) => {
    const tag = pgidOnDisk ? 'a' : 'b';
    const files = { M: join(fleet.dir, `ran-once-${tag}`), P: join(fleet.dir, `job-${tag}.pid`), T: join(fleet.dir, `ticks-${tag}`) };
    // First attempt: record its pid and tick forever. The retry finds the marker and succeeds.
    const script = [
      'if [ -e "$M" ]; then echo second-run; exit 0; fi',
      'touch "$M"; echo $$ > "$P"; echo first-run',
      'while :; do echo tick >> "$T"; sleep 0.1; done',
    ].join('\n');
    const job = await jobs.submit(shell(script, { retries: 1, executor: { type: 'shell', command: ['sh', '-c', script], env: files } }));
    await jobs.waitForState(job.id, ['running']);
    const pid = Number(await waitFor('the job wrote its pid', async () => (await readFile(files.P, 'utf8').catch(() => '')).trim()));
    const meta = join(fleet.dir, 'r1', 'state', 'spool', `${job.id}-1`, 'meta.json');
    await waitFor('the spool has the process group', async () => JSON.parse(await readFile(meta, 'utf8')).pgid === pid);

    fleet.procs.find('runner r1').kill('SIGKILL');
    await sleep(300);
    // Nobody stopped it: the job's process group outlives the daemon.
    expect(await processAlive(pid)).toBe(true);
    if (!pgidOnDisk) {
      const { pgid: _, ...rest } = JSON.parse(await readFile(meta, 'utf8'));
      await writeFile(meta, JSON.stringify(rest));
    }

    const restarted = fleet.startRunner('r1');
    await restarted.waitForLog((l) => l.msg === 'job was running when rbtk-runner stopped; reporting it failed' && l.jobId === job.id);
    await waitFor('the orphaned job process is gone', async () => !(await processAlive(pid)), 10_000);
    const ticks = (await stat(files.T)).size;
    await sleep(500);
    expect((await stat(files.T)).size).toBe(ticks);

    const done = await jobs.waitForState(job.id, ['succeeded', 'failed'], 30_000);
    expect(done).toMatchObject({ state: 'succeeded', attempt: 2, runnerId });
    expect(await jobs.log(job.id)).toBe('second-run\n');
    const events = jobEvents(fleet).get(job.id)!;
    expect(terminalEvents(events)).toEqual([expect.objectContaining({ state: 'succeeded', attempt: 2 })]);
    expect(events.filter((e) => e.state === 'queued' && e.attempt === 1)).toHaveLength(1);
  });
});
