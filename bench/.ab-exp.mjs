import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, stopProcess, summarize, waitUntil } from './lib.mjs';
import { readFile } from 'node:fs/promises';
import { startProcess } from './lib.mjs';
import { registerRunners, SimRunner, Submitter, TRUE_JOB, COORDINATOR_BIN } from './rbtk.mjs';
async function startCoordinator(dir, bin, env) {
  const { child, line } = await startProcess(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir], (l) => l.msg === 'listening', env);
  return { child, pid: child.pid, url: line.url, admin: (await readFile(join(dir, 'admin.token'), 'utf8')).trim() };
}
async function setup(bin, env) {
  const dir = await mkdtemp(join(tmpdir(), 'rbtk-exp-'));
  const coord = await startCoordinator(dir, bin, env);
  const c = { coord, assignedAt: new Map(), done: 0 };
  for (const t of await registerRunners(coord.url, coord.admin, { count: 200 })) { const s = new SimRunner({ onAssign: (m) => c.assignedAt.set(m.jobId, performance.now()), onDone: () => c.done++ }); await s.connect(coord.url, t); }
  c.sub = new Submitter(); await c.sub.connect(coord.url, coord.admin);
  return c;
}
const lag = async (url) => { const t = await (await fetch(url + '/metrics')).text(); return Number(t.match(/^nodejs_eventloop_lag_max_seconds (\S+)/m)[1]) * 1000; };
const WT = '/tmp/inline-wt/packages/coordinator/bin/rbtk-coordinator.js';
const variants = (process.env.VARIANTS ?? '1000,250').split(',');
const cs = []; for (const v of variants) cs.push([v, await setup(WT, { EXP_CKPT: v })]);
const res = Object.fromEntries(variants.map((v) => [v, []]));
for (let round = 0; round < Number(process.env.ROUNDS ?? 8); round++) {
  for (const [name, c] of cs) {
    await lag(c.coord.url);
    const submittedAt = new Map(); c.assignedAt.clear(); c.done = 0;
    const start = performance.now(); const inflight = [];
    for (let i = 0; i < 3000; i++) { const wait = start + i - performance.now(); if (wait > 1) await sleep(wait); const t0 = performance.now(); inflight.push(c.sub.submit(TRUE_JOB).then((j) => submittedAt.set(j.id, t0))); }
    await Promise.all(inflight); await waitUntil(() => c.done >= 3000, 60000);
    const s = summarize([...submittedAt].map(([id, t0]) => c.assignedAt.get(id) - t0));
    const l = await lag(c.coord.url);
    res[name].push({ p50: s.p50, p99: s.p99, lagMax: l });
    console.log(`round ${round} ${name}: p50 ${s.p50.toFixed(2)} p99 ${s.p99.toFixed(2)} max ${s.max.toFixed(1)} coordinator event-loop lag max ${l.toFixed(1)} ms`);
  }
}
for (const [k, v] of Object.entries(res)) { const med = (a) => a.sort((x, y) => x - y)[a.length >> 1]; console.log(k, 'median of rounds: p99', med(v.map((r) => r.p99)).toFixed(2), 'lag max', med(v.map((r) => r.lagMax)).toFixed(1), 'rounds with p99<5:', v.filter((r) => r.p99 < 5).length, '/', v.length); }
for (const [, c] of cs) await stopProcess(c.coord.child); process.exit(0);
