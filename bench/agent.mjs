// npm run bench:agent — what an idle rbtk-runner costs its host.
//
// A real `rbtk-runner run` (shell executor, registered as a host would be)
// connected to a coordinator with default settings (heartbeat every 15 s,
// token rotation hourly), no jobs. After SETTLE_MS for startup, over IDLE_MS
// (60 s; 30 s with --quick): the daemon's CPU (utime+stime from
// /proc/PID/stat, as a share of one core) and RSS (VmRSS from
// /proc/PID/status: at the end, and the highest sampled each second), and
// whether it started any child process meanwhile.
// Targets: RSS under 60 MB and CPU under 0.1 %.
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmt, machine, measureProcesses, MiB, printTable, progress, QUICK, saveResults, sleep, stopProcess } from './lib.mjs';
import { api, startAgent, startCoordinator } from './rbtk.mjs';

const IDLE_MS = QUICK ? 30_000 : 60_000;
const SETTLE_MS = QUICK ? 10_000 : 15_000;
const TARGET_RSS = 60 * MiB;
const TARGET_CPU = 0.001;

/** Processes whose parent is pid (the agent's executors and probes, if any). */
function childrenOf(pid) {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry));
    } catch {}
  }
  return out;
}

const dir = await mkdtemp(join(tmpdir(), 'rbtk-bench-agent-'));
const coord = await startCoordinator(join(dir, 'coordinator'));
let agent;
let m;
let children;
try {
  await api(coord.url, coord.admin, 'POST', '/v1/pools', { name: 'bench' });
  agent = await startAgent(coord.url, coord.admin, dir, { name: 'idle' });
  progress(`agent connected; settling ${SETTLE_MS / 1000} s, then measuring ${IDLE_MS / 1000} s idle`);
  await sleep(SETTLE_MS);
  const seen = new Set();
  const watch = setInterval(() => childrenOf(agent.pid).forEach((c) => seen.add(c)), 500);
  [m] = await measureProcesses([agent.pid], IDLE_MS);
  clearInterval(watch);
  children = seen.size;
  const runner = (await api(coord.url, coord.admin, 'GET', '/v1/runners?pool=bench'))[0];
  if (runner?.status !== 'ONLINE') throw new Error(`the agent is ${runner?.status ?? 'gone'}, not ONLINE`);
} finally {
  if (agent) await stopProcess(agent.child);
  await stopProcess(coord.child);
  await rm(dir, { recursive: true, force: true });
}

const targets = [
  { target: 'idle agent RSS < 60 MB', measured: `${fmt(m.maxRssBytes / MiB, 1)} MB (max sampled; ${fmt(m.rssBytes / MiB, 1)} at the end)`, pass: m.maxRssBytes < TARGET_RSS },
  { target: 'idle agent CPU < 0.1 %', measured: `${fmt(m.cpuCore * 100, 3)} % (${fmt(m.cpuSeconds * 1000, 0)} ms CPU in ${fmt(m.seconds, 0)} s)`, pass: m.cpuCore < TARGET_CPU },
];
console.log(`\nrbtk agent footprint — ${JSON.stringify(machine())}`);
console.log(`rbtk-runner run, shell executor, idle for ${IDLE_MS / 1000} s; ${children} child processes started meanwhile\n`);
printTable(targets.map((t) => ({ ...t, result: t.pass ? 'PASS' : 'FAIL' })), ['target', 'measured', 'result']);
const file = await saveResults('agent', { machine: machine(), quick: QUICK, idleMs: IDLE_MS, settleMs: SETTLE_MS, agent: m, childProcesses: children, targets });
console.log(`\nsaved ${file}`);
