// npm run bench:hosted — submit→running for a job on a hosted pool (real
// rbtk-runner members) with a ready hot member, a stopped member (started on
// claim) and an empty pool (a cold start), in one run: with the process
// provider (SIGSTOPped members), and beside it with the docker provider
// (paused containers of a local busybox image, this host's node and agent
// bind-mounted) where a Docker Engine answers (RBTK_BENCH_HOSTED_DOCKER=0
// skips it). Submit→running is the coordinator's own clock: the job's
// startedAt (the member's `started` frame) minus its createdAt (the submit),
// so HTTP and polling add nothing. Targets: hot p50 < 50 ms, stopped p50 < 1 s.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dockerAvailable, ensureBenchImage } from './docker-image.mjs';
import { fmt, machine, printTable, progress, QUICK, saveResults, sleep, stopProcess, summarize, waitUntil } from './lib.mjs';
import { api, startCoordinator } from './rbtk.mjs';

const SAMPLES = QUICK ? { hot: 10, stopped: 5, cold: 3 } : { hot: 40, stopped: 20, cold: 8 };
const TARGETS = { hot: 50, stopped: 1000 };

const withDocker = process.env.RBTK_BENCH_HOSTED_DOCKER !== '0' && (await dockerAvailable());
const image = withDocker ? await ensureBenchImage() : null;
if (!withDocker) progress('no Docker Engine answers (or RBTK_BENCH_HOSTED_DOCKER=0): process provider only');
/** Pools of each provider: their names' prefix, what their hosted spec adds, and what "stopped" is there. */
const PROVIDERS = [
  { name: 'process', prefix: '', hosted: { provider: 'process' }, stopped: 'SIGSTOP' },
  ...(withDocker ? [{ name: 'docker', prefix: 'dock-', hosted: { provider: 'docker', image }, stopped: 'paused' }] : []),
];

const dir = await mkdtemp(join(tmpdir(), 'rbtk-bench-hosted-'));
const coordinator = await startCoordinator(join(dir, 'coordinator'), ['--reconcile-interval', '1s', ...(withDocker ? ['--hosted-docker-agent', 'host'] : [])]);
const { url, admin } = coordinator;
const hostedStatus = (pool) => api(url, admin, 'GET', `/v1/pools/${pool}/hosted`);
const pools = [];

async function createPool(name, hosted) {
  await api(url, admin, 'POST', '/v1/pools', { name, type: 'hosted', hosted: { executors: ['shell'], ...hosted } });
  pools.push(name);
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
const rows = [];
try {
  for (const provider of PROVIDERS) {
    const pool = (kind) => `${provider.prefix}${kind}`;
    // Hot: one member kept ready, back to ready after each job.
    await createPool(pool('hot'), { ...provider.hosted, target: 1, max: 2, return: 'ready' });
    // Stopped: one member, stopped once warm, started by the claim, stopped again after its job.
    await createPool(pool('stopped'), { ...provider.hosted, target: 1, max: 2, mode: 'stopped', return: 'ready' });
    // Empty: no member until a job comes; overflow cold-starts one for it, removed after (target 0).
    await createPool(pool('cold'), { ...provider.hosted, target: 0, max: 1, onEmpty: 'overflow' });

    const hot = [];
    progress(`${provider.name} hot: ${SAMPLES.hot} jobs`);
    for (let i = 0; i < SAMPLES.hot; i++) {
      await until(pool('hot'), (s) => s.counts.ready === 1 && s.counts.claimed === 0 && s.counts.warming === 0, 'one ready member');
      hot.push(await sample(pool('hot')));
    }
    const stopped = [];
    progress(`${provider.name} stopped: ${SAMPLES.stopped} jobs`);
    for (let i = 0; i < SAMPLES.stopped; i++) {
      await until(pool('stopped'), (s) => s.counts.stopped === 1 && s.members.length === 1, 'one stopped member');
      await sleep(200); // its session closed and its runner settled as frozen
      stopped.push(await sample(pool('stopped')));
    }
    const cold = [];
    progress(`${provider.name} cold: ${SAMPLES.cold} jobs`);
    for (let i = 0; i < SAMPLES.cold; i++) {
      await until(pool('cold'), (s) => s.members.length === 0, 'no member');
      cold.push(await sample(pool('cold')));
    }

    // Each provider's rows beside its own cold start.
    const coldP50 = summarize(cold).p50;
    for (const [name, samples, target, ok] of [
      ['hot (ready member)', hot, `p50 < ${TARGETS.hot} ms`, (p50) => p50 < TARGETS.hot],
      [`stopped (${provider.stopped}, started on claim)`, stopped, `p50 < ${TARGETS.stopped} ms`, (p50) => p50 < TARGETS.stopped],
      ['cold (empty pool, overflow)', cold, '-', () => true],
    ]) {
      const s = summarize(samples);
      // p99 only where there are enough samples for it to mean more than the max.
      const p99 = s.n >= 20 ? fmt(s.p99, 1) : '-';
      results[`${provider.name} ${name}`] = { ...s, samples, target };
      rows.push({ provider: provider.name, case: name, n: s.n, 'p50 ms': fmt(s.p50, 1), 'p99 ms': p99, 'max ms': fmt(s.max, 1), target, met: target === '-' ? '-' : ok(s.p50) ? 'yes' : 'NO', 'cold/this': fmt(coldP50 / s.p50, 1) });
    }
  }
  console.log('\nsubmit→running on a hosted pool (shell job `true`)');
  printTable(rows, ['provider', 'case', 'n', 'p50 ms', 'p99 ms', 'max ms', 'target', 'met', 'cold/this']);
  const file = await saveResults('hosted', { machine: machine(), quick: QUICK, providers: PROVIDERS.map((p) => p.name), results });
  console.log(`\nsaved ${file}`);
} finally {
  // Members outlive the coordinator by design: remove them first (target 0), then stop it.
  for (const pool of pools) {
    await api(url, admin, 'POST', `/v1/pools/${pool}/hosted`, { target: 0, min: 0 }).catch(() => {});
  }
  for (const pool of pools) {
    await until(pool, (s) => s.members.length === 0, 'members removed').catch((err) => progress(String(err)));
  }
  await stopProcess(coordinator.child);
  await rm(dir, { recursive: true, force: true });
}
