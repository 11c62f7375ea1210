// npm run bench:dispatch — how fast does a job get from submit to a runner?
//
// Measured in one run, on this machine, against the floor it cannot beat:
//   1. floor: a bare WebSocket round trip on loopback;
//   2. the coordinator (the real bin, its own process) with 200 simulated
//      runners that speak the real protocol and complete each job at once:
//      dispatch latency at a fixed 1,000 jobs/s, twice: over the first 3 s of
//      a fresh coordinator (cold: V8 still compiles the hot paths, on threads
//      that take a core's share of this 2-core machine), and over 3 s after
//      5 s at that rate (warm: the steady state the target is about). Each
//      next to the WAL fdatasync times the coordinator saw meanwhile (each
//      dispatch waits for one: the disk's tail is under the p99) and the CPU
//      its other threads took. Then maximum throughput and the coordinator's
//      CPU time per job (steadier than jobs/s on a shared machine);
//   3. real rbtk-runner daemons running the shell job `true`, 1 and 4 of them.
// Every state change is durable (SQLite WAL, fdatasync before any answer) throughout.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmt, machine, measureFloor, printTable, procStat, progress, QUICK, saveResults, sleep, stopProcess, summarize, threadCpu } from './lib.mjs';
import { api, flatOutSubmits, pacedSubmits, registerRunners, SimRunner, startAgent, startCoordinator, Submitter, TRUE_JOB, walSyncBuckets, walSyncsBetween } from './rbtk.mjs';

const SIM_RUNNERS = QUICK ? 50 : 200;
const RATE = 1_000;
const RATE_SECONDS = QUICK ? 1 : 3;
const THROUGHPUT_JOBS = QUICK ? 2_000 : 10_000;
const REAL_JOBS = QUICK ? 50 : 200;
/** Jobs at the rate before the warm window: the cold window's, then more, 5 s in all. */
const WARM_UP_JOBS = QUICK ? 2_000 : 5_000;

async function simulated(url, admin, coordinatorPid) {
  const tokens = await registerRunners(url, admin, { count: SIM_RUNNERS });
  const assignedAt = new Map();
  let done = 0;
  const runners = [];
  for (const token of tokens) {
    const sim = new SimRunner({
      onAssign: (m) => assignedAt.set(m.jobId, performance.now()),
      onDone: () => done++,
    });
    await sim.connect(url, token);
    runners.push(sim);
  }
  const submitter = new Submitter();
  await submitter.connect(url, admin);
  progress(`${SIM_RUNNERS} simulated runners connected`);

  // Phase A: a steady 1,000 jobs/s; latency from the submit frame to the assign frame at a runner.
  const paced = RATE * RATE_SECONDS;
  const window = async () => {
    done = 0;
    assignedAt.clear();
    const syncsBefore = await walSyncBuckets(url);
    const cpuBefore = threadCpu(coordinatorPid);
    const latency = summarize(await pacedSubmits(submitter, { jobs: paced, rate: RATE, assignedAt, done: () => done }));
    const cpu = threadCpu(coordinatorPid);
    const seconds = (cpu.at - cpuBefore.at) / 1000;
    return {
      ...latency,
      rate: RATE,
      jobs: paced,
      // Every dispatch waits for at least one fdatasync: the disk's own tail is a floor under its p99.
      walSyncs: walSyncsBetween(syncsBefore, await walSyncBuckets(url)),
      mainThreadCore: (cpu.main - cpuBefore.main) / seconds,
      otherThreadsCore: (cpu.others - cpuBefore.others) / seconds,
    };
  };
  const cold = await window();
  progress(`${paced} paced jobs done on a fresh coordinator`);
  // Not measured: the rest of 5 s at the rate, by when V8 has compiled what is hot (its threads' CPU falls to a few %).
  done = 0; // each run of paced jobs waits for its own to end, so none ends inside the next window
  await pacedSubmits(submitter, { jobs: WARM_UP_JOBS - paced, rate: RATE, assignedAt, done: () => done });
  const warm = await window();
  progress(`${paced} paced jobs done, warm`);

  // Phase B: as fast as it goes, 500 submits in flight; completed = result acknowledged (durable).
  const before = done;
  const cpuBefore = procStat(coordinatorPid).cpuSeconds;
  const secondsB = await flatOutSubmits(submitter, { jobs: THROUGHPUT_JOBS, done: () => done - before });
  progress(`${THROUGHPUT_JOBS} jobs done as fast as possible`);
  // CPU per job (all the coordinator's threads) varies far less than jobs/s when the machine is shared.
  const cpuMicrosPerJob = ((procStat(coordinatorPid).cpuSeconds - cpuBefore) * 1e6) / THROUGHPUT_JOBS;
  for (const r of runners) r.close();
  submitter.ws.close();
  return { cold, warm, throughput: { jobs: THROUGHPUT_JOBS, perSecond: THROUGHPUT_JOBS / secondsB, cpuMicrosPerJob } };
}

async function realAgents(count) {
  const dir = await mkdtemp(join(tmpdir(), 'rbtk-bench-real-'));
  const coord = await startCoordinator(join(dir, 'coordinator'));
  const agents = [];
  try {
    const { url, admin } = coord;
    await api(url, admin, 'POST', '/v1/pools', { name: 'bench' });
    for (let i = 0; i < count; i++) {
      agents.push((await startAgent(url, admin, dir, { name: `agent-${i}`, maxJobs: 4 })).child);
    }
    const submitter = new Submitter();
    await submitter.connect(url, admin);
    const t0 = performance.now();
    const ids = await Promise.all(Array.from({ length: REAL_JOBS }, () => submitter.submit(TRUE_JOB).then((j) => j.id)));
    let jobs = [];
    for (;;) {
      jobs = await api(url, admin, 'GET', `/v1/jobs?pool=bench&limit=${REAL_JOBS}`);
      if (jobs.length >= REAL_JOBS && jobs.every((j) => ['succeeded', 'failed'].includes(j.state))) break;
      if (performance.now() - t0 > 120_000) throw new Error('real agents did not finish in 120 s');
      await sleep(100);
    }
    const seconds = (performance.now() - t0) / 1000;
    const toRunning = jobs.filter((j) => ids.includes(j.id) && j.startedAt).map((j) => Date.parse(j.startedAt) - Date.parse(j.createdAt));
    submitter.ws.close();
    return { agents: count, jobs: REAL_JOBS, failed: jobs.filter((j) => j.state !== 'succeeded').length, ...summarize(toRunning), perSecond: REAL_JOBS / seconds };
  } finally {
    await Promise.all(agents.map((a) => stopProcess(a)));
    await stopProcess(coord.child);
    await rm(dir, { recursive: true, force: true });
  }
}

const floor = await measureFloor();
const dir = await mkdtemp(join(tmpdir(), 'rbtk-bench-'));
const coord = await startCoordinator(dir);
let sim;
try {
  sim = await simulated(coord.url, coord.admin, coord.pid);
} finally {
  await stopProcess(coord.child);
  await rm(dir, { recursive: true, force: true });
}
const real1 = await realAgents(1);
const real4 = await realAgents(4);

/** What the disk did while the paced jobs ran: each dispatch waits for an fdatasync, so its stalls are a floor under the p99. */
const diskNote = (w, seconds) =>
  `${w.n} WAL fdatasyncs, p50 ≤ ${fmt(w.p50Under, 2)} ms, p99 ≤ ${fmt(w.p99Under, 2)} ms, slowest ≤ ${fmt(w.slowestUnder, 0)} ms; ` +
  `${w.stalls} over ${w.stallMs} ms, together ≥ ${fmt(w.stalledAtLeastMs, 0)} ms of the ${seconds} s (1% is ${fmt(seconds * 10, 0)} ms)`;

/** The coordinator's CPU over the window: its event loop, and V8's compiler and GC threads with libuv's pool. */
const threadsNote = (w) => `coordinator CPU: main thread ${fmt(w.mainThreadCore * 100, 0)}%, other threads ${fmt(w.otherThreadsCore * 100, 0)}% of a core`;

const rows = [
  { case: 'floor: bare WebSocket round trip', p50_ms: fmt(floor.p50, 3), p99_ms: fmt(floor.p99, 3), 'jobs/s': fmt(floor.perSecond, 0), note: 'sequential echo' },
  { case: `coordinator, ${SIM_RUNNERS} sim runners @ ${RATE}/s, cold`, p50_ms: fmt(sim.cold.p50, 3), p99_ms: fmt(sim.cold.p99, 3), 'jobs/s': String(RATE), note: `submit→assign, the first ${RATE_SECONDS} s of a fresh coordinator; ${threadsNote(sim.cold)}; the disk meanwhile: ${diskNote(sim.cold.walSyncs, RATE_SECONDS)}` },
  { case: `coordinator, ${SIM_RUNNERS} sim runners @ ${RATE}/s, warm`, p50_ms: fmt(sim.warm.p50, 3), p99_ms: fmt(sim.warm.p99, 3), 'jobs/s': String(RATE), note: `submit→assign after ${WARM_UP_JOBS / RATE} s at the rate; p99 = ${fmt(sim.warm.p99 / floor.p99, 1)}× floor; target p99 < 5 ms; ${threadsNote(sim.warm)}; the disk meanwhile: ${diskNote(sim.warm.walSyncs, RATE_SECONDS)}` },
  { case: `coordinator, ${SIM_RUNNERS} sim runners, max`, p50_ms: '', p99_ms: '', 'jobs/s': fmt(sim.throughput.perSecond, 0), note: `completed, durable; target ≥ 5,000 jobs/s; coordinator ${fmt(sim.throughput.cpuMicrosPerJob, 0)} µs CPU per job` },
  { case: '1 real agent (max_jobs 4), shell true', p50_ms: fmt(real1.p50, 0), p99_ms: fmt(real1.p99, 0), 'jobs/s': fmt(real1.perSecond, 0), note: `submit→running (server clock, ms); ${real1.failed} failed` },
  { case: '4 real agents (max_jobs 4), shell true', p50_ms: fmt(real4.p50, 0), p99_ms: fmt(real4.p99, 0), 'jobs/s': fmt(real4.perSecond, 0), note: `submit→running (server clock, ms); ${real4.failed} failed` },
];
console.log(`\nrbtk dispatch benchmark — ${JSON.stringify(machine())}\n`);
printTable(rows, ['case', 'p50_ms', 'p99_ms', 'jobs/s', 'note']);
const file = await saveResults('dispatch', { machine: machine(), quick: QUICK, floor, sim, real1, real4 });
console.log(`\nsaved ${file}`);
