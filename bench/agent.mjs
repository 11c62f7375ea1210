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
//
// Then the same daemon streams a chatty job's log: a shell job writing
// LOG_MB of text (99-character lines), submitted over REST and followed to
// its end, with the coordinator storing every byte (--max-log-bytes 0). Its
// wall time, the agent's CPU and its highest RSS meanwhile, next to the same
// command with its output thrown away (the baseline: what the job costs
// without rbtk). Faster than the coordinator stores it, the log spills past
// the agent's 8 MiB memory bound to its spool file and is read back as
// acknowledgements come.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isTerminalJobState } from '@rbtk/protocol';
import { fmt, machine, measureProcesses, MiB, printTable, procStat, progress, QUICK, saveResults, sleep, stopProcess } from './lib.mjs';
import { api, startAgent, startCoordinator } from './rbtk.mjs';

const IDLE_MS = QUICK ? 30_000 : 60_000;
const SETTLE_MS = QUICK ? 10_000 : 15_000;
const TARGET_RSS = 60 * MiB;
const TARGET_CPU = 0.001;
const LOG_MB = QUICK ? 20 : 100;
const CHATTY = `head -c ${LOG_MB * 1_000_000} /dev/zero | tr '\\0' 'a' | fold -w 99`;

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
const coord = await startCoordinator(join(dir, 'coordinator'), ['--max-log-bytes', '0']);
let agent;
let m;
let children;
let logs;
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
  logs = await chattyJob();
} finally {
  if (agent) await stopProcess(agent.child);
  await stopProcess(coord.child);
  await rm(dir, { recursive: true, force: true });
}

/** The chatty job through the agent, then the same command alone (the baseline). */
async function chattyJob() {
  progress(`a job writing ${LOG_MB} MB of log`);
  const cpuBefore = procStat(agent.pid).cpuSeconds;
  let maxRss = procStat(agent.pid).rssBytes;
  const t0 = performance.now();
  const { id } = await api(coord.url, coord.admin, 'POST', '/v1/jobs', { pool: 'bench', executor: { type: 'shell', command: ['sh', '-c', CHATTY] } });
  let job;
  for (;;) {
    job = await api(coord.url, coord.admin, 'GET', `/v1/jobs/${id}`);
    maxRss = Math.max(maxRss, procStat(agent.pid).rssBytes);
    if (isTerminalJobState(job.state)) break;
    await sleep(50);
  }
  const seconds = (performance.now() - t0) / 1000;
  const agentCpuSeconds = procStat(agent.pid).cpuSeconds - cpuBefore;
  const b0 = performance.now();
  await promisify(execFile)('sh', ['-c', `${CHATTY} > /dev/null`]);
  const baselineSeconds = (performance.now() - b0) / 1000;
  return { mb: LOG_MB, state: job.state, seconds, agentCpuSeconds, maxRssBytes: maxRss, stored: job.logBytes, baselineSeconds };
}

const targets = [
  { target: 'idle agent RSS < 60 MB', measured: `${fmt(m.maxRssBytes / MiB, 1)} MB (max sampled; ${fmt(m.rssBytes / MiB, 1)} at the end)`, pass: m.maxRssBytes < TARGET_RSS },
  { target: 'idle agent CPU < 0.1 %', measured: `${fmt(m.cpuCore * 100, 3)} % (${fmt(m.cpuSeconds * 1000, 0)} ms CPU in ${fmt(m.seconds, 0)} s)`, pass: m.cpuCore < TARGET_CPU },
];
console.log(`\nrbtk agent footprint — ${JSON.stringify(machine())}`);
console.log(`rbtk-runner run, shell executor, idle for ${IDLE_MS / 1000} s; ${children} child processes started meanwhile\n`);
printTable(targets.map((t) => ({ ...t, result: t.pass ? 'PASS' : 'FAIL' })), ['target', 'measured', 'result']);
const mbPerSecond = (s) => logs.mb / s;
console.log(`\na shell job writing ${logs.mb} MB of log (${logs.state}; the coordinator stored ${fmt(logs.stored / 1e6, 1)} MB)\n`);
printTable(
  [
    { case: 'through rbtk-runner to the coordinator', seconds: fmt(logs.seconds, 2), 'MB/s': fmt(mbPerSecond(logs.seconds), 0), note: `agent CPU ${fmt(logs.agentCpuSeconds, 2)} s (${fmt((logs.agentCpuSeconds * 1000) / logs.mb, 1)} ms per MB); agent RSS at most ${fmt(logs.maxRssBytes / MiB, 0)} MB (sampled every 50 ms)` },
    { case: 'baseline: the same command, output to /dev/null', seconds: fmt(logs.baselineSeconds, 2), 'MB/s': fmt(mbPerSecond(logs.baselineSeconds), 0), note: `the job through rbtk takes ${fmt(logs.seconds / logs.baselineSeconds, 1)}× as long` },
  ],
  ['case', 'seconds', 'MB/s', 'note'],
);
const file = await saveResults('agent', { machine: machine(), quick: QUICK, idleMs: IDLE_MS, settleMs: SETTLE_MS, agent: m, childProcesses: children, targets, logs });
console.log(`\nsaved ${file}`);
