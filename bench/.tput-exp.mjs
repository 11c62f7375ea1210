import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { procStat, stopProcess, waitUntil } from './lib.mjs';
import { registerRunners, SimRunner, startCoordinator, Submitter, TRUE_JOB } from './rbtk.mjs';
const dir = await mkdtemp(join(tmpdir(), 'rbtk-exp-'));
const coord = await startCoordinator(dir);
const { url, admin } = coord;
const tokens = await registerRunners(url, admin, { count: 200 });
let done = 0;
for (const t of tokens) { const s = new SimRunner({ onDone: () => done++ }); await s.connect(url, t); }
const sub = new Submitter(); await sub.connect(url, admin);
const N = Number(process.env.N ?? 10000);
for (let round = 0; round < Number(process.env.ROUNDS ?? 3); round++) {
  done = 0; const cpu0 = procStat(coord.pid).cpuSeconds; const me0 = process.cpuUsage(); const t0 = performance.now();
  let sent = 0; const window = new Set();
  while (sent < N) { while (window.size < 500 && sent < N) { const p = sub.submit(TRUE_JOB).then(() => window.delete(p)); window.add(p); sent++; } await Promise.race(window); }
  await waitUntil(() => done >= N, 120000);
  const s = (performance.now() - t0) / 1000; const me = process.cpuUsage(me0);
  const { statSync } = await import("node:fs"); console.log("wal MB", (statSync(join(dir, "rbtk.db-wal")).size / 1e6).toFixed(1));
  console.log(`round ${round}: ${(N / s).toFixed(0)} jobs/s, coordinator ${(((procStat(coord.pid).cpuSeconds - cpu0) * 1e6) / N).toFixed(0)} µs CPU/job, bench ${((me.user + me.system) / N).toFixed(0)} µs CPU/job`);
}
await stopProcess(coord.child); await rm(dir, { recursive: true, force: true }); process.exit(0);
