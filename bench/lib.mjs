// Shared pieces of the benchmarks: percentiles, a table printer, process helpers,
// /proc readings, pacing. Nothing here knows about rbtk (that is bench/rbtk.mjs).
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import WebSocket, { WebSocketServer } from 'ws';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const QUICK = process.argv.includes('--quick');

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}

export function summarize(latenciesMs) {
  const s = latenciesMs.filter(Number.isFinite).sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] };
}

export const fmt = (n, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

export function printTable(rows, columns) {
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (cells) => cells.map((c, i) => String(c ?? '').padEnd(widths[i])).join('  ');
  console.log(line(columns));
  for (const r of rows) console.log(line(columns.map((c) => r[c])));
}

export async function saveResults(name, data) {
  const dir = `${ROOT}bench/results`;
  await mkdir(dir, { recursive: true });
  const file = `${dir}/${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  await writeFile(file, JSON.stringify(data, null, 2));
  return file;
}

/**
 * Starts a bin as a child process; resolves once a JSON log line matches.
 * `onLine` sees every later stdout line as text (parse only what you need:
 * a busy coordinator writes hundreds a second).
 */
export function startProcess(file, args, match, env = {}, nodeFlags = [], { onLine } = {}) {
  const child = spawn(process.execPath, [...nodeFlags, file, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start`)), 20_000);
    let started = false;
    // Keep reading (and dropping) stdout after the match, so the child never blocks on a full pipe.
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (started) return onLine?.(line);
      try {
        const l = JSON.parse(line);
        if (match(l)) {
          started = true;
          clearTimeout(timer);
          resolve({ child, line: l });
        }
      } catch {}
    });
    child.on('exit', (code) => reject(new Error(`${file} exited ${code}`)));
  });
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the child is gone. */
export function stopProcess(child, graceMs = 5_000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => (clearTimeout(timer), resolve()));
    child.kill('SIGCONT'); // in case a benchmark stopped it
    child.kill('SIGTERM');
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const progress = (msg) => console.error(`[bench] ${msg}`);

export async function waitUntil(cond, timeoutMs, what = () => 'jobs to complete', everyMs = 5) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`benchmark timed out waiting: ${what()}`);
    await sleep(everyMs);
  }
}

/** Calls fn(i) for i < n at `rate` per second; resolves with all their promises settled. */
export async function paced(n, rate, fn) {
  const start = performance.now();
  const all = [];
  for (let i = 0; i < n; i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 1) await sleep(wait);
    const p = fn(i);
    p.catch(() => {}); // reported by Promise.all below, not as unhandled meanwhile
    all.push(p);
  }
  return Promise.all(all);
}

/** Calls fn(i) for i < n as fast as it goes, at most `window` unsettled at a time. */
export async function flood(n, window, fn) {
  const inflight = new Set();
  for (let i = 0; i < n; i++) {
    if (inflight.size >= window) await Promise.race(inflight);
    const p = fn(i).finally(() => inflight.delete(p));
    inflight.add(p);
  }
  await Promise.all(inflight);
}

/** What the figures were measured on, printed and saved with them. */
export function machine() {
  const cpus = os.cpus();
  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadavg: os.loadavg().map((l) => Number(l.toFixed(2))),
  };
}

// ---- /proc -----------------------------------------------------------------

let clockTicks;
/** USER_HZ, the unit of utime/stime in /proc/PID/stat (100 almost everywhere). */
export function clkTck() {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU seconds (utime + stime) from the text of a /proc stat file, a process's or a thread's. */
function statCpuSeconds(stat) {
  // comm, field 2, may hold spaces and parentheses: count fields from the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / clkTck(); // fields 14 and 15
}

/** CPU seconds (utime + stime) and memory of a live process, from /proc. */
export function procStat(pid) {
  const cpuSeconds = statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { cpuSeconds, rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM'), at: performance.now() };
}

/**
 * CPU seconds of a process's main thread and of all its other threads
 * together (V8's compiler and GC helpers, libuv's pool): while V8 still
 * compiles hot code, the others take a core's share of a 2-core machine.
 */
export function threadCpu(pid) {
  let main = 0;
  let others = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    const seconds = statCpuSeconds(stat);
    if (Number(tid) === pid) main += seconds;
    else others += seconds;
  }
  return { main, others, at: performance.now() };
}

/**
 * Samples processes every `everyMs` for `ms`: CPU as a fraction of one core
 * over the whole window, RSS at the end and the highest RSS seen.
 */
export async function measureProcesses(pids, ms, everyMs = 1_000) {
  const first = pids.map(procStat);
  const maxRss = first.map((s) => s.rssBytes);
  const end = performance.now() + ms;
  while (performance.now() < end) {
    await sleep(Math.min(everyMs, end - performance.now()));
    pids.forEach((pid, i) => (maxRss[i] = Math.max(maxRss[i], procStat(pid).rssBytes)));
  }
  return pids.map((pid, i) => {
    const last = procStat(pid);
    const seconds = (last.at - first[i].at) / 1000;
    return {
      pid,
      seconds,
      cpuSeconds: last.cpuSeconds - first[i].cpuSeconds,
      cpuCore: (last.cpuSeconds - first[i].cpuSeconds) / seconds,
      rssBytes: last.rssBytes,
      maxRssBytes: Math.max(maxRss[i], last.rssBytes),
      peakRssBytes: last.peakRssBytes,
    };
  });
}

/** The soft limit on open files of this process (the shell's ulimit -n). */
export function openFileLimit() {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m?.[1] === 'unlimited' ? Infinity : Number(m?.[1] ?? NaN);
}

export const MiB = 2 ** 20;

// ---- the floor: a bare WebSocket round trip --------------------------------

const open = (ws) => new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));

/** Sequential echoes to a server in this process (bench:dispatch's floor). */
export async function measureFloor(n = 5_000) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (ws) => ws.on('message', (d) => ws.send(d)));
  await new Promise((r) => wss.once('listening', r));
  const ws = new WebSocket(`ws://127.0.0.1:${wss.address().port}`);
  await open(ws);
  const lat = [];
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    ws.send(JSON.stringify({ type: 'ping', i }));
    await new Promise((r) => ws.once('message', r));
    lat.push(performance.now() - t0);
  }
  const seconds = (performance.now() - started) / 1000;
  ws.close();
  await new Promise((r) => wss.close(r));
  return { ...summarize(lat), perSecond: n / seconds };
}

/**
 * A client of bench/echo-server.mjs (its own process, like a coordinator):
 * `echo(i)` resolves when frame i came back. Several frames may be in flight.
 */
export async function startEcho() {
  const { child, line } = await startProcess(`${ROOT}bench/echo-server.mjs`, [], (l) => l.msg === 'listening');
  const ws = new WebSocket(line.url, { perMessageDeflate: false });
  await open(ws);
  const waiting = new Map();
  ws.on('message', (data) => {
    const { i } = JSON.parse(data.toString());
    waiting.get(i)?.();
    waiting.delete(i);
  });
  return {
    pid: child.pid,
    echo: (i) => new Promise((resolve) => (waiting.set(i, resolve), ws.send(JSON.stringify({ type: 'ping', i })))),
    async close() {
      ws.close();
      await stopProcess(child);
    },
  };
}
