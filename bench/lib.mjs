// Shared pieces of the benchmarks: percentiles, a table printer, process helpers.
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}

export function summarize(latenciesMs) {
  const s = [...latenciesMs].sort((a, b) => a - b);
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

/** Starts a bin as a child process; resolves once a JSON log line matches. */
export function startProcess(file, args, match, env = {}, nodeFlags = []) {
  const child = spawn(process.execPath, [...nodeFlags, file, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start`)), 20_000);
    // Keep reading (and dropping) stdout after the match, so the child never blocks on a full pipe.
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const l = JSON.parse(line);
        if (match(l)) {
          clearTimeout(timer);
          resolve({ child, line: l });
        }
      } catch {}
    });
    child.on('exit', (code) => reject(new Error(`${file} exited ${code}`)));
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** What the figures were measured on, printed and saved with them. */
export function machine() {
  const cpus = os.cpus();
  return { node: process.version, platform: `${process.platform}-${process.arch}`, cpus: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown' };
}
