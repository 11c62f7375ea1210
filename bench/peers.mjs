// npm run bench:peers — rbtk's dispatch against the tools users would pick instead,
// on this machine, in this run: enqueue → a worker starts → completion acknowledged.
//
//   floor      a bare WebSocket echo server in its own process (bench/echo-server.mjs)
//   rbtk sim   the coordinator (its own process) + simulated runners speaking the real protocol
//   rbtk real  the coordinator + real rbtk-runner daemons running the shell job `true`
//   BullMQ     on the local Redis (127.0.0.1:6379)
//   graphile   graphile-worker 0.16 on the local PostgreSQL (127.0.0.1:5432, database test), fresh schema
//
// Each system gets the same two phases:
//   A. PACED_JOBS jobs at RATE jobs/s, a rate every system here sustains: latency from the
//      enqueue call to the worker starting the job ("dispatch"), and to its completion being
//      acknowledged ("end to end");
//   B. JOBS jobs as fast as it goes, WINDOW enqueue requests in flight: jobs/s from the first
//      enqueue to the last acknowledged completion.
//
// How the comparison is kept fair:
//   - the same job count, the same WORKERS concurrent job slots and the same enqueue window
//     everywhere: WORKERS simulated runners of max_jobs 1; AGENTS real agents of max_jobs
//     WORKERS/AGENTS; one BullMQ Worker of concurrency WORKERS; graphile-worker concurrency
//     WORKERS (its pool sized to match);
//   - the server is its own process everywhere (coordinator, redis-server, postgres, the echo
//     server); the producer and the workers share this process for all but real agents, so one
//     clock times every step;
//   - a job does nothing (the processor returns at once, the simulated runner answers at once),
//     so what is measured is the queue;
//   - every system is as durable as it is configured here, and we say how: rbtk commits each
//     state change to SQLite (WAL, synchronous=FULL, group commit) before anyone hears of it;
//     graphile-worker commits to PostgreSQL with fsync and synchronous_commit as configured
//     (printed below); BullMQ writes to Redis as it runs here, which is with no persistence
//     at all (no RDB save points, no AOF; printed below), so BullMQ gets the easiest deal;
//   - each keeps its defaults for finished jobs: rbtk keeps the job row and its events, BullMQ
//     keeps the job in its completed set, graphile-worker deletes the row.
// Targets: rbtk (sim) dispatch p99 within 10× the floor's p99; rbtk's durable jobs/s at least BullMQ's.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmt, flood, machine, paced, printTable, progress, QUICK, saveResults, sleep, startEcho, stopProcess, summarize, waitUntil } from './lib.mjs';
import { api, registerRunners, SimRunner, startAgent, startCoordinator, Submitter, TRUE_JOB } from './rbtk.mjs';

const WORKERS = 32;
const AGENTS = 4;
const RATE = 100;
const PACED_JOBS = QUICK ? 300 : 2_000;
const JOBS = QUICK ? 1_000 : 10_000;
const WINDOW = 500;
const REDIS = { host: '127.0.0.1', port: 6379 };
const PG = process.env.RBTK_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const ONLY = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');

/** Times of job i: enqueue called, worker started, completion acknowledged (performance.now()). */
class Marks {
  constructor(n) {
    this.enq = new Float64Array(n).fill(NaN);
    this.start = new Float64Array(n).fill(NaN);
    this.done = new Float64Array(n).fill(NaN);
    this.completed = 0;
    this.twice = 0;
    this.failed = 0;
  }
  started(i) {
    if (Number.isNaN(this.start[i])) this.start[i] = performance.now();
  }
  finished(i, ok = true) {
    if (!Number.isNaN(this.done[i])) return void this.twice++;
    this.done[i] = performance.now();
    this.completed++;
    if (!ok) this.failed++;
  }
}

/**
 * Runs both phases against a system whose start and completion this process
 * sees: `sys.enqueue(i)` resolves when the enqueue was acknowledged, and the
 * system calls marks.started(i) and marks.finished(i).
 */
async function inProcess(name, setup) {
  const marks = new Marks(PACED_JOBS + JOBS);
  const sys = await setup(marks);
  try {
    const enqueue = (i) => ((marks.enq[i] = performance.now()), sys.enqueue(i));
    progress(`${name}: ${PACED_JOBS} jobs at ${RATE}/s`);
    await paced(PACED_JOBS, RATE, enqueue);
    await waitUntil(() => marks.completed >= PACED_JOBS, 60_000, () => `${name}: ${marks.completed}/${PACED_JOBS} paced jobs done`);
    const range = (from, to) => Array.from({ length: to - from }, (_, k) => from + k);
    const a = range(0, PACED_JOBS);
    const dispatch = summarize(a.map((i) => marks.start[i] - marks.enq[i]));
    const endToEnd = summarize(a.map((i) => marks.done[i] - marks.enq[i]));
    progress(`${name}: ${JOBS} jobs, ${WINDOW} enqueues in flight`);
    const t0 = performance.now();
    await flood(JOBS, WINDOW, (k) => enqueue(PACED_JOBS + k));
    const total = PACED_JOBS + JOBS;
    await waitUntil(() => marks.completed >= total, 300_000, () => `${name}: ${marks.completed - PACED_JOBS}/${JOBS} jobs done`);
    const last = Math.max(...range(PACED_JOBS, total).map((i) => marks.done[i]));
    await sleep(200); // a job finished twice would show up now
    return { name, dispatch, endToEnd, perSecond: JOBS / ((last - t0) / 1000), twice: marks.twice, failed: marks.failed, ...(await sys.info?.()) };
  } finally {
    await sys.teardown();
  }
}

const envOf = (i) => ({ ...TRUE_JOB, executor: { ...TRUE_JOB.executor, env: { BENCH_I: String(i) } } });

// ---- the systems -------------------------------------------------------------

async function floor() {
  return inProcess('floor', async (marks) => {
    const echo = await startEcho();
    return {
      // A round trip is both the start and the acknowledgement.
      enqueue: (i) => echo.echo(i).then(() => (marks.started(i), marks.finished(i))),
      teardown: () => echo.close(),
    };
  });
}

async function rbtkSim() {
  return inProcess('rbtk (sim runners)', async (marks) => {
    const dir = await mkdtemp(join(tmpdir(), 'rbtk-bench-peers-'));
    const coord = await startCoordinator(dir);
    const tokens = await registerRunners(coord.url, coord.admin, { count: WORKERS });
    const indexOf = new Map();
    const runners = [];
    for (const token of tokens) {
      const sim = new SimRunner({
        onAssign: (m) => {
          const i = Number(m.spec.executor.env.BENCH_I);
          indexOf.set(m.jobId, i);
          marks.started(i);
        },
        onDone: (m) => marks.finished(indexOf.get(m.jobId), m.accepted),
      });
      await sim.connect(coord.url, token);
      runners.push(sim);
    }
    const submitter = new Submitter();
    await submitter.connect(coord.url, coord.admin);
    return {
      enqueue: (i) => submitter.submit(envOf(i)),
      async teardown() {
        for (const r of runners) r.close();
        submitter.close();
        await stopProcess(coord.child);
        await rm(dir, { recursive: true, force: true });
      },
    };
  });
}

/**
 * Real agents run in their own processes, so the coordinator's own
 * timestamps (ms) time each job: createdAt (submit stored), startedAt (the
 * agent reported the process started), finishedAt (result stored, result_ack
 * sent). Jobs/s: from the first createdAt to the last finishedAt.
 */
async function rbtkReal() {
  const name = `rbtk (${AGENTS} real agents, shell true)`;
  const dir = await mkdtemp(join(tmpdir(), 'rbtk-bench-peers-real-'));
  const coord = await startCoordinator(join(dir, 'coordinator'));
  const { url, admin } = coord;
  const agents = [];
  try {
    await api(url, admin, 'POST', '/v1/pools', { name: 'bench' });
    for (let i = 0; i < AGENTS; i++) agents.push(await startAgent(url, admin, dir, { name: `agent-${i}`, maxJobs: WORKERS / AGENTS }));
    const submitter = new Submitter();
    await submitter.connect(url, admin);
    const idle = async () => {
      for (const state of ['queued', 'assigned', 'running']) {
        if ((await api(url, admin, 'GET', `/v1/jobs?pool=bench&state=${state}&limit=1`)).length > 0) return false;
      }
      return true;
    };
    const times = async (ids) => {
      const jobs = [];
      await flood(ids.length, 16, async (k) => void jobs.push(await api(url, admin, 'GET', `/v1/jobs/${ids[k]}`)));
      return jobs;
    };
    const ms = (iso) => Date.parse(iso);

    progress(`${name}: ${PACED_JOBS} jobs at ${RATE}/s`);
    const a = await paced(PACED_JOBS, RATE, (i) => submitter.submit(envOf(i)).then((j) => j.id));
    await waitUntil(idle, 120_000, () => `${name}: paced jobs to finish`, 200);
    const aJobs = await times(a);
    progress(`${name}: ${JOBS} jobs, ${WINDOW} enqueues in flight`);
    const b = new Array(JOBS);
    await flood(JOBS, WINDOW, (k) => submitter.submit(envOf(PACED_JOBS + k)).then((j) => void (b[k] = j.id)));
    await waitUntil(idle, 600_000, () => `${name}: jobs to finish`, 200);
    const bJobs = await times(b);
    submitter.close();
    const first = Math.min(...bJobs.map((j) => ms(j.createdAt)));
    const last = Math.max(...bJobs.map((j) => ms(j.finishedAt)));
    const all = [...aJobs, ...bJobs];
    return {
      name,
      dispatch: summarize(aJobs.map((j) => ms(j.startedAt) - ms(j.createdAt))),
      endToEnd: summarize(aJobs.map((j) => ms(j.finishedAt) - ms(j.createdAt))),
      perSecond: JOBS / ((last - first) / 1000),
      failed: all.filter((j) => j.state !== 'succeeded').length,
      retried: all.filter((j) => j.attempt !== 1).length,
      clock: 'coordinator timestamps (ms)',
    };
  } finally {
    await Promise.all(agents.map((a) => stopProcess(a.child)));
    await stopProcess(coord.child);
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The same BullMQ run against a private redis-server that fsyncs every write
 * (appendonly yes, appendfsync always): the durability rbtk and graphile-worker
 * give, for a like-for-like figure beside the stock Redis one.
 */
async function bullmqDurable() {
  const port = await new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
  const dir = await mkdtemp(join(tmpdir(), 'rbtk-bench-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'], { stdio: 'ignore' });
  try {
    // Answers PING once it has loaded (an AOF file is opened first).
    const pong = () =>
      new Promise((resolve) => {
        const socket = connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
        socket.once('data', (d) => (socket.destroy(), resolve(d.toString().startsWith('+PONG'))));
        socket.once('error', () => resolve(false));
      });
    await waitUntil(pong, 10_000, () => 'the private redis-server to answer', 100);
    return await bullmq({ host: '127.0.0.1', port }, 'BullMQ (Redis, appendfsync always)');
  } finally {
    await stopProcess(child);
    await rm(dir, { recursive: true, force: true });
  }
}

async function bullmq(connection = REDIS, label = 'BullMQ (Redis)') {
  const { Queue, Worker } = await import('bullmq');
  return inProcess(label, async (marks) => {
    const name = `rbtk-bench-${process.pid}-${Date.now()}`;
    const queue = new Queue(name, { connection });
    const worker = new Worker(name, async (job) => void marks.started(job.data.i), { connection, concurrency: WORKERS });
    worker.on('completed', (job) => marks.finished(job.data.i));
    worker.on('failed', (job) => marks.finished(job.data.i, false));
    await worker.waitUntilReady();
    const client = await queue.client;
    const config = async (key) => (await client.config('GET', key))[1];
    const persistence = { save: await config('save'), appendonly: await config('appendonly'), appendfsync: await config('appendfsync') };
    return {
      enqueue: (i) => queue.add('true', { i }),
      info: () => ({ durability: `redis save="${persistence.save}" appendonly=${persistence.appendonly} (appendfsync ${persistence.appendfsync})` }),
      async teardown() {
        await worker.close();
        await queue.obliterate({ force: true });
        await queue.close();
      },
    };
  });
}

async function graphile() {
  const { Logger, makeWorkerUtils, run } = await import('graphile-worker');
  const pg = (await import('pg')).default;
  return inProcess('graphile-worker (PostgreSQL)', async (marks) => {
    const schema = `rbtk_bench_${process.pid}_${Date.now()}`;
    const logger = new Logger(() => () => {});
    const runner = await run({
      connectionString: PG,
      schema,
      concurrency: WORKERS,
      maxPoolSize: WORKERS + 2,
      noHandleSignals: true,
      logger,
      taskList: { bench: async (payload) => void marks.started(payload.i) },
    });
    runner.events.on('job:complete', ({ job, error }) => marks.finished(job.payload.i, !error));
    const utils = await makeWorkerUtils({ connectionString: PG, schema, maxPoolSize: 16, logger });
    const client = new pg.Client({ connectionString: PG });
    await client.connect();
    const show = async (key) => (await client.query(`SHOW ${key}`)).rows[0][key];
    const durability = `postgres fsync=${await show('fsync')} synchronous_commit=${await show('synchronous_commit')} wal_sync_method=${await show('wal_sync_method')}`;
    return {
      enqueue: (i) => utils.addJob('bench', { i }),
      info: () => ({ durability, schema }),
      async teardown() {
        await runner.stop();
        await utils.release();
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await client.end();
      },
    };
  });
}

// ---- run, print, save -------------------------------------------------------------

const systems = { floor, rbtkSim, rbtkReal, bullmq: () => bullmq(), bullmqDurable, graphile };
const results = {};
for (const [key, fn] of Object.entries(systems)) {
  if (ONLY && !ONLY.includes(key)) continue;
  try {
    results[key] = await fn();
  } catch (err) {
    // A peer that is not reachable here (no Redis, no PostgreSQL) is reported, not fatal.
    progress(`${key} failed: ${err.message}`);
    results[key] = { name: key, error: err.message };
  }
}

const rbtk = results.rbtkSim;
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${fmt(a / b, 2)}×` : '-');
const rows = Object.values(results).map((r) =>
  r.error
    ? { system: r.name, note: `failed: ${r.error}` }
    : {
        system: r.name,
        'dispatch p50': fmt(r.dispatch.p50, 3),
        'dispatch p99': fmt(r.dispatch.p99, 3),
        'e2e p50': fmt(r.endToEnd.p50, 3),
        'e2e p99': fmt(r.endToEnd.p99, 3),
        'jobs/s': fmt(r.perSecond, 0),
        'p50 ×rbtk': ratio(r.dispatch.p50, rbtk?.dispatch?.p50),
        'p99 ×rbtk': ratio(r.dispatch.p99, rbtk?.dispatch?.p99),
        'jobs/s ×rbtk': ratio(r.perSecond, rbtk?.perSecond),
        note: [r.clock, r.durability, r.failed ? `${r.failed} failed` : '', r.twice ? `${r.twice} completed twice` : '', r.retried ? `${r.retried} retried` : '']
          .filter(Boolean)
          .join('; '),
      },
);

const targets = [];
if (rbtk?.dispatch && results.floor?.dispatch) {
  const x = rbtk.dispatch.p99 / results.floor.dispatch.p99;
  targets.push({ target: 'rbtk dispatch p99 ≤ 10× bare WebSocket round trip p99', measured: `${fmt(rbtk.dispatch.p99, 3)} ms = ${fmt(x, 1)}× ${fmt(results.floor.dispatch.p99, 3)} ms`, pass: x <= 10 });
}
if (rbtk?.perSecond && results.bullmqDurable?.perSecond) {
  // Not the target (that one is against Redis as it runs here, above): the like-for-like figure.
  targets.push({ target: '(like for like) rbtk durable jobs/s vs BullMQ on Redis with appendfsync always', measured: `${fmt(rbtk.perSecond, 0)} vs ${fmt(results.bullmqDurable.perSecond, 0)}`, pass: rbtk.perSecond >= results.bullmqDurable.perSecond });
}
if (rbtk?.perSecond && results.bullmq?.perSecond) {
  targets.push({ target: 'rbtk durable jobs/s ≥ BullMQ jobs/s (same run)', measured: `${fmt(rbtk.perSecond, 0)} vs ${fmt(results.bullmq.perSecond, 0)}`, pass: rbtk.perSecond >= results.bullmq.perSecond });
}

console.log(`\nrbtk vs peers — ${JSON.stringify(machine())}`);
console.log(`${WORKERS} workers; phase A: ${PACED_JOBS} jobs at ${RATE}/s (latency, ms); phase B: ${JOBS} jobs, ${WINDOW} enqueues in flight (jobs/s)\n`);
printTable(rows, ['system', 'dispatch p50', 'dispatch p99', 'e2e p50', 'e2e p99', 'jobs/s', 'p50 ×rbtk', 'p99 ×rbtk', 'jobs/s ×rbtk', 'note']);
console.log('');
printTable(targets.map((t) => ({ ...t, result: t.pass ? 'PASS' : 'FAIL' })), ['target', 'measured', 'result']);
const file = await saveResults('peers', { machine: machine(), quick: QUICK, workers: WORKERS, agents: AGENTS, rate: RATE, pacedJobs: PACED_JOBS, jobs: JOBS, window: WINDOW, results, targets });
console.log(`\nsaved ${file}`);
