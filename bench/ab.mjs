// npm run bench:ab -- --base REV [--rounds N] — is a change faster, on a machine whose speed moves?
//
// On a shared VM the same build's dispatch p99 moves 10× from one minute to the next (the disk
// stalls), so a benchmark of the old build, then one of the new, compares two moments, not two
// builds. This runs both at once instead: the coordinator built from REV (a git worktree under
// bench/.ab/, built there) and the one built from this checkout, each in its own process with its
// own 200 simulated runners, and alternates measurement rounds between them, so both meet the
// same machine. Each round: submit → assign latency at a paced 1,000 jobs/s for 3 s (as
// bench:dispatch), then 5,000 jobs flat out (completed, durable: jobs/s and coordinator CPU per
// job), with the disk's fdatasync stalls the coordinator saw meanwhile. It prints every round and
// the median of each figure per build, and the new build's median as a ratio of the base's.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmt, machine, printTable, procStat, progress, ROOT, saveResults, startProcess, stopProcess, summarize } from './lib.mjs';
import { COORDINATOR_BIN, flatOutSubmits, pacedSubmits, registerRunners, SimRunner, Submitter, walSyncBuckets, walSyncsBetween } from './rbtk.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const BASE = arg('base');
const ROUNDS = Number(arg('rounds', 6));
const SIM_RUNNERS = 200;
const RATE = 1_000;
const PACED = 3_000;
const FLAT_OUT = 5_000;
if (!BASE || !Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error('usage: npm run bench:ab -- --base REV [--rounds N]   (REV: a commit, branch or tag to compare this checkout with)');
  process.exit(2);
}

/**
 * REV checked out under bench/.ab/<sha> and built. Its node_modules links to
 * this checkout's packages, except @rbtk/*, which are the worktree's own.
 */
function buildBase(rev) {
  const sha = execFileSync('git', ['rev-parse', '--verify', `${rev}^{commit}`], { cwd: ROOT, encoding: 'utf8' }).trim();
  const dir = join(ROOT, 'bench', '.ab', sha.slice(0, 12));
  if (!existsSync(dir)) {
    progress(`checking out ${rev} (${sha.slice(0, 12)}) in ${dir}`);
    execFileSync('git', ['worktree', 'add', '--detach', dir, sha], { cwd: ROOT, stdio: 'ignore' });
    const modules = join(dir, 'node_modules');
    mkdirSync(join(modules, '@rbtk'), { recursive: true });
    for (const name of readdirSync(join(ROOT, 'node_modules'))) {
      if (name !== '@rbtk' && name !== '.bin') symlinkSync(join(ROOT, 'node_modules', name), join(modules, name));
    }
    for (const pkg of readdirSync(join(dir, 'packages'))) symlinkSync(join(dir, 'packages', pkg), join(modules, '@rbtk', pkg));
  }
  progress(`building ${rev}`);
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-b'], { cwd: dir, stdio: 'inherit' });
  return { name: `base ${rev} (${sha.slice(0, 12)})`, bin: join(dir, 'packages', 'coordinator', 'bin', 'rbtk-coordinator.js') };
}

/** A coordinator from `bin` with its simulated runners and a submitter. */
async function setUp({ name, bin }) {
  const dir = await mkdtemp(join(tmpdir(), 'rbtk-bench-ab-'));
  const { child, line } = await startProcess(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir], (l) => l.msg === 'listening');
  const url = line.url;
  const admin = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
  const side = { name, dir, child, url, assignedAt: new Map(), done: 0, runners: [], rounds: [] };
  for (const token of await registerRunners(url, admin, { count: SIM_RUNNERS })) {
    const sim = new SimRunner({ onAssign: (m) => side.assignedAt.set(m.jobId, performance.now()), onDone: () => side.done++ });
    await sim.connect(url, token);
    side.runners.push(sim);
  }
  side.submitter = new Submitter();
  await side.submitter.connect(url, admin);
  return side;
}

/** One round on one side: paced latency, then flat out. */
async function round(side) {
  const { submitter, assignedAt } = side;
  assignedAt.clear();
  side.done = 0;
  const syncsBefore = await walSyncBuckets(side.url);
  const paced = summarize(await pacedSubmits(submitter, { jobs: PACED, rate: RATE, assignedAt, done: () => side.done, timeoutMs: 60_000 }));
  const disk = walSyncsBetween(syncsBefore, await walSyncBuckets(side.url));

  side.done = 0;
  const cpuBefore = procStat(side.child.pid).cpuSeconds;
  const perSecond = FLAT_OUT / (await flatOutSubmits(submitter, { jobs: FLAT_OUT, done: () => side.done }));
  const cpuMicrosPerJob = ((procStat(side.child.pid).cpuSeconds - cpuBefore) * 1e6) / FLAT_OUT;
  return { p50: paced.p50, p99: paced.p99, max: paced.max, perSecond, cpuMicrosPerJob, diskStalledMs: disk.stalledAtLeastMs, diskSlowestMs: disk.slowestUnder };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const base = buildBase(BASE);
const sides = [];
try {
  sides.push(await setUp(base));
  sides.push(await setUp({ name: 'this checkout', bin: COORDINATOR_BIN }));
  // A warm-up round each, not counted: a fresh coordinator runs its first jobs unoptimized.
  for (const side of sides) await round(side);
  const rows = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Which side goes first alternates too: the machine may change within a round.
    for (const side of r % 2 ? [...sides].reverse() : sides) {
      const res = await round(side);
      side.rounds.push(res);
      rows.push({
        round: String(r + 1),
        build: side.name,
        p50_ms: fmt(res.p50, 2),
        p99_ms: fmt(res.p99, 2),
        'jobs/s': fmt(res.perSecond, 0),
        'µs/job': fmt(res.cpuMicrosPerJob, 0),
        disk: `stalled ≥ ${fmt(res.diskStalledMs, 0)} ms, slowest ≤ ${fmt(res.diskSlowestMs, 0)} ms`,
      });
      progress(`round ${r + 1}, ${side.name}: p99 ${fmt(res.p99, 2)} ms, ${fmt(res.perSecond, 0)} jobs/s`);
    }
  }
  console.log(`\nrbtk A/B — ${JSON.stringify(machine())}`);
  console.log(`each round: ${PACED} jobs at ${RATE}/s (submit → assign), then ${FLAT_OUT} flat out; ${SIM_RUNNERS} simulated runners per build\n`);
  printTable(rows, ['round', 'build', 'p50_ms', 'p99_ms', 'jobs/s', 'µs/job', 'disk']);
  const figures = [
    ['dispatch p50 (ms)', 'p50', 2],
    ['dispatch p99 (ms)', 'p99', 2],
    ['jobs/s flat out', 'perSecond', 0],
    ['coordinator CPU per job (µs)', 'cpuMicrosPerJob', 0],
  ];
  const [a, b] = sides;
  const summary = figures.map(([label, key, digits]) => {
    const ma = median(a.rounds.map((x) => x[key]));
    const mb = median(b.rounds.map((x) => x[key]));
    return { figure: `median ${label}`, [a.name]: fmt(ma, digits), [b.name]: fmt(mb, digits), 'this ÷ base': `${fmt(mb / ma, 2)}×` };
  });
  console.log('');
  printTable(summary, ['figure', a.name, b.name, 'this ÷ base']);
  const file = await saveResults('ab', { machine: machine(), base: a.name, rounds: ROUNDS, sides: sides.map((s) => ({ name: s.name, rounds: s.rounds })) });
  console.log(`\nsaved ${file}`);
} finally {
  for (const side of sides) {
    for (const r of side.runners) r.close();
    side.submitter?.close();
    await stopProcess(side.child);
    await rm(side.dir, { recursive: true, force: true });
  }
}
