// npm run bench:hosted — submit→running for a job on a hosted pool (process
// provider, real rbtk-runner members) with a ready hot member, a stopped
// member (SIGSTOPped, started on claim) and an empty pool (a cold start), in
// one run. Submit→running is the coordinator's own clock: the job's startedAt
// (the member's `started` frame) minus its createdAt (the submit), so HTTP and
// polling add nothing. Targets: hot p50 < 50 ms, stopped p50 < 1 s.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmt, machine, printTable, progress, QUICK, saveResults, sleep, stopProcess, summarize, waitUntil } from './lib.mjs';
import { api, startCoordinator } from './rbtk.mjs';

const SAMPLES = QUICK ? { hot: 10, stopped: 5, cold: 3 } : { hot: 40, stopped: 20, cold: 8 };
const TARGETS = { hot: 50, stopped: 1000 };

const dir = await mkdtemp(join(tmpdir(), 'rbtk-bench-hosted-'));
const coordinator = await startCoordinator(join(dir, 'coordinator'), ['--reconcile-interval', '1s']);
const { url, admin } = coordinator;
const hostedStatus = (pool) => api(url, admin, 'GET', `/v1/pools/${pool}/hosted`);

async function createPool(name, hosted) {
  await api(url, admin, 'POST', '/v1/pools', { name, type: 'hosted', hosted: { provider: 'process', executors: ['shell'], ...hosted } });
}

/** Waits until the pool's members are as `ok` says (polling its hosted status). */
async function until(pool, ok, what) {
  let last;
  await waitUntil(async () => ok((last = await hostedStatus(pool))), 60_000, () => `${pool}: ${what} (${JSON.stringify(last?.counts)})`, 20);
}

/** One job `true` on the pool; its submit→running in ms from the coordinator's timestamps. */
async function sample(pool) {
  const job = await api(url, admin, 'POST', '/v1/jobs', { pool, executor: { type: 'shell', command: ['true'] } });
  let done;
  await waitUntil(async () => ['succeeded', 'failed'].includes((done = await api(url, admin, 'GET', `/v1/jobs/${job.id}`)).state), 60_000, () => `job ${job.id}`, 10);
  if (done.state !== 'succeeded') throw new Error(`job on ${pool} ${done.state}: ${done.reason}`);
  return Date.parse(done.startedAt) - Date.parse(done.createdAt);
}

const results = {};
try {
  // Hot: one member kept ready, back to ready after each job.
  await createPool('hot', { target: 1, max: 2, return: 'ready' });
  // Stopped: one member, SIGSTOPped once warm, started by the claim, stopped again after its job.
  await createPool('stopped', { target: 1, max: 2, mode: 'stopped', return: 'ready' });
  // Empty: no member until a job comes; overflow cold-starts one for it, removed after (target 0).
  await createPool('cold', { target: 0, max: 1, onEmpty: 'overflow' });

  const hot = [];
  progress(`hot: ${SAMPLES.hot} jobs`);
  for (let i = 0; i < SAMPLES.hot; i++) {
    await until('hot', (s) => s.counts.ready === 1 && s.counts.claimed === 0 && s.counts.warming === 0, 'one ready member');
    hot.push(await sample('hot'));
  }
  const stopped = [];
  progress(`stopped: ${SAMPLES.stopped} jobs`);
  for (let i = 0; i < SAMPLES.stopped; i++) {
    await until('stopped', (s) => s.counts.stopped === 1 && s.members.length === 1, 'one stopped member');
    await sleep(200); // its session closed and its runner settled as frozen
    stopped.push(await sample('stopped'));
  }
  const cold = [];
  progress(`cold: ${SAMPLES.cold} jobs`);
  for (let i = 0; i < SAMPLES.cold; i++) {
    await until('cold', (s) => s.members.length === 0, 'no member');
    cold.push(await sample('cold'));
  }

  const coldP50 = summarize(cold).p50;
  const rows = [
    ['hot (ready member)', hot, `p50 < ${TARGETS.hot} ms`, (p50) => p50 < TARGETS.hot],
    ['stopped (started on claim)', stopped, `p50 < ${TARGETS.stopped} ms`, (p50) => p50 < TARGETS.stopped],
    ['cold (empty pool, overflow)', cold, '-', () => true],
  ].map(([name, samples, target, ok]) => {
    const s = summarize(samples);
    // p99 only where there are enough samples for it to mean more than the max.
    const p99 = s.n >= 20 ? fmt(s.p99, 1) : '-';
    results[name] = { ...s, samples, target };
    return { case: name, n: s.n, 'p50 ms': fmt(s.p50, 1), 'p99 ms': p99, 'max ms': fmt(s.max, 1), target, met: target === '-' ? '-' : ok(s.p50) ? 'yes' : 'NO', 'cold/this': fmt(coldP50 / s.p50, 1) };
  });
  console.log('\nsubmit→running on a hosted pool (process provider, shell job `true`)');
  printTable(rows, ['case', 'n', 'p50 ms', 'p99 ms', 'max ms', 'target', 'met', 'cold/this']);
  const file = await saveResults('hosted', { machine: machine(), quick: QUICK, results });
  console.log(`\nsaved ${file}`);
} finally {
  // Members outlive the coordinator by design: remove them first (target 0), then stop it.
  for (const pool of ['hot', 'stopped', 'cold']) {
    await api(url, admin, 'POST', `/v1/pools/${pool}/hosted`, { target: 0, min: 0 }).catch(() => {});
  }
  for (const pool of ['hot', 'stopped', 'cold']) {
    await until(pool, (s) => s.members.length === 0, 'members removed').catch((err) => progress(String(err)));
  }
  await stopProcess(coordinator.child);
  await rm(dir, { recursive: true, force: true });
}
