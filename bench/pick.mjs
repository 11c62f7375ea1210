// npm run bench:pick — what choosing a runner for a job costs the coordinator, in pools of 200
// to 10,000 one-slot runners with every runner free (the case where any scan reads them all).
// Each round picks a runner (RunnerIndex.pick), reserves the job there and releases it again, as
// a job that ends at once would. The baseline, measured in the same run: the same choice made by
// looking at every runner of the pool (runnerFits on each, most free slots wins), which is what a
// pick cost before the index filed runners by their free slots.
import { busySlots, RunnerIndex, runnerFits } from '../packages/coordinator/dist/jobs/runner-index.js';
import { fmt, machine, printTable, progress, QUICK, saveResults } from './lib.mjs';

const SPEC = { pool: 'p', executor: { type: 'shell', command: ['true'], env: {} }, requires: { labels: {} }, timeout: '1h', retries: 0 };
const POOLS = QUICK ? [200, 10_000] : [200, 1_000, 10_000];

const runner = (i) => ({
  id: `r${i}`, poolId: 1, status: 'ONLINE', executors: new Set(['shell']), labels: {}, airgapped: false, maxJobs: 1, gpus: [],
  inFlight: new Map(), stopping: new Map(), restingUntil: 0, refusals: 0, owner: {}, send() {},
});

/** The baseline: every runner of the pool looked at for each job. */
function scanPick(runners, job) {
  let best;
  let bestFree = 0;
  for (const r of runners) {
    const free = r.maxJobs - busySlots(r);
    if (r.status !== 'ONLINE' || free <= 0 || !runnerFits(r, job)) continue;
    if (!best || free > bestFree) [best, bestFree] = [r, free];
  }
  return best;
}

/** µs per pick + reserve + release, over `jobs` jobs after a warm-up. */
function measure(index, pick, jobs) {
  const once = (n) => {
    for (let i = 0; i < n; i++) {
      const job = { id: `j${i}`, spec: SPEC, excluded: [], attempt: 0 };
      const r = pick(job);
      index.reserve(r, job);
      index.release(r.id, job.id, 1);
    }
  };
  once(Math.min(jobs, 2_000));
  const t = process.hrtime.bigint();
  once(jobs);
  return Number(process.hrtime.bigint() - t) / 1_000 / jobs;
}

const rows = [];
for (const size of POOLS) {
  progress(`${size} runners`);
  const index = new RunnerIndex();
  const runners = Array.from({ length: size }, (_, i) => runner(i));
  for (const r of runners) index.add(r);
  const jobs = Math.max(2_000, Math.round(20_000_000 / size));
  const indexed = measure(index, (job) => index.pick(1, job), jobs);
  const scanned = measure(index, (job) => scanPick(runners, job), Math.max(500, Math.round(jobs / 20)));
  rows.push({ pool: `${size} one-slot runners, all free`, 'index µs': fmt(indexed), 'scan µs': fmt(scanned), 'scan ÷ index': `${fmt(scanned / indexed, 0)}×` });
}

console.log(`\nrbtk runner pick benchmark — ${JSON.stringify(machine())}\n`);
printTable(rows, ['pool', 'index µs', 'scan µs', 'scan ÷ index']);
console.log(`\nsaved ${await saveResults('pick', { machine: machine(), rows })}`);
