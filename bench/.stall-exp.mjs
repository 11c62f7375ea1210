import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { sleep, stopProcess, summarize, waitUntil } from './lib.mjs';
import { walSyncBuckets, registerRunners, SimRunner, startCoordinator, Submitter, TRUE_JOB } from './rbtk.mjs';
const dir = await mkdtemp(join(tmpdir(), 'rbtk-exp-'));
const coord = await startCoordinator(dir);
const { url, admin } = coord;
if (process.env.STRACE) { const { spawn } = await import("node:child_process"); spawn("strace", ["-f", "-tt", "-T", "-e", "trace=fsync,fdatasync", "-o", "/tmp/exp/strace.txt", "-p", String(coord.pid)], { stdio: "ignore" }); await sleep(1000); }
const tokens = await registerRunners(url, admin, { count: 200 });
const assignedAt = new Map();
let done = 0;
for (const t of tokens) { const s = new SimRunner({ onAssign: (m) => assignedAt.set(m.jobId, performance.now()), onDone: () => done++ }); await s.connect(url, t); }
const sub = new Submitter(); await sub.connect(url, admin);
const h = monitorEventLoopDelay({ resolution: 5 }); h.enable();
for (let round = 0; round < 6; round++) {
  const b0 = await walSyncBuckets(url);
  const submittedAt = new Map(); assignedAt.clear(); done = 0;
  const start = performance.now(); const inflight = [];
  for (let i = 0; i < 3000; i++) {
    const wait = start + i - performance.now(); if (wait > 1) await sleep(wait);
    const t0 = performance.now();
    inflight.push(sub.submit(TRUE_JOB).then((j) => submittedAt.set(j.id, t0)));
  }
  await Promise.all(inflight); await waitUntil(() => done >= 3000, 30000);
  const lat = [...submittedAt].map(([id, t0]) => [t0 - start, assignedAt.get(id) - t0]);
  const s = summarize(lat.map((x) => x[1]));
  const worst = lat.sort((a, b) => b[1] - a[1]).slice(0, 3).map(([t, l]) => `${(t/1000).toFixed(2)}s:${l.toFixed(0)}ms`);
  console.log(`round ${round}: p50 ${s.p50.toFixed(2)} p99 ${s.p99.toFixed(2)} max ${s.max.toFixed(1)}  worst at ${worst.join(' ')}  bench loop max ${(h.max/1e6).toFixed(1)}ms`);
  const b1 = await walSyncBuckets(url); console.log('   syncs by bucket', [...b1].map(([k,v])=>`${k}:${v-(b0.get(k)??0)}`).join(' '));
  h.reset();
}
await stopProcess(coord.child); await rm(dir, { recursive: true, force: true }); process.exit(0);
