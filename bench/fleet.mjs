// npm run bench:fleet — the coordinator holding a fleet: 1,000, 5,000 and 10,000
// simulated runners (bench/fleet-runners.mjs, up to PER_CHILD sockets per child
// process), each on its own WebSocket, heartbeating every 15 s with a token
// rotation on every heartbeat (--token-rotation 0s: heartbeat_ack carries a new
// token, the runner answers token_confirm, the coordinator token_confirmed).
//
// Per fleet size, with a fresh coordinator:
//   setup (not measured): register N runners with one registration token of N
//     uses, connect them all, then let one heartbeat interval pass so every
//     runner has heartbeated and rotated at least once;
//   steady window (WINDOW_MS, two heartbeat intervals): the coordinator's CPU
//     (utime+stime from /proc/PID/stat, as a fraction of one core) and RSS
//     (VmRSS from /proc/PID/status, at the end and the highest sampled each
//     second); heartbeat handling latency at the runners (heartbeat sent →
//     heartbeat_ack received) and rotation latency (→ token_confirmed);
//   offline: SIGSTOP the child process holding SAMPLE of the runners (a hung
//     host: sockets open, nothing answered) and time, for each, its last
//     heartbeat as the coordinator recorded it (GET /v1/runners/:id
//     lastHeartbeatAt) to the coordinator marking it OFFLINE (the time of its
//     "runner offline" log line, written right after the UPDATE), against
//     --offline-after. The bench uses --offline-after 20s (the default is 60s)
//     to bound the run; how late the mark comes after the threshold does not
//     depend on the threshold. It also checks that no other runner was marked
//     OFFLINE meanwhile.
// Targets: 10,000 runners under half of one core and under 512 MB RSS; OFFLINE
// marked within 1 s after the threshold.
//
// Registration is not rate-limited by the coordinator (nothing in
// packages/coordinator limits request rates); it costs one durable transaction
// per runner, done here 8 at a time.
import { fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmt, machine, measureProcesses, MiB, openFileLimit, printTable, progress, QUICK, ROOT, saveResults, sleep, stopProcess, summarize } from './lib.mjs';
import { api, registerRunners, startCoordinator, walSyncBuckets, walSyncsBetween } from './rbtk.mjs';

const SIZES = process.argv.find((a) => a.startsWith('--sizes='))?.slice(8).split(',').map(Number) ?? (QUICK ? [1_000] : [1_000, 5_000, 10_000]);
const HEARTBEAT_MS = QUICK ? 5_000 : 15_000;
const OFFLINE_AFTER_MS = QUICK ? 8_000 : 20_000;
const WINDOW_MS = 2 * HEARTBEAT_MS;
const PER_CHILD = 2_500;
const SAMPLE = QUICK ? 20 : 50;
/** A WAL fdatasync this long (ms) or longer, while the sample goes OFFLINE, is named in the row's note. */
const STALL_MS = 100;
const TARGET_CPU = 0.5;
const TARGET_RSS = 512 * MiB;
const TARGET_OFFLINE_LATE_MS = 1_000;

/** A child process of bench/fleet-runners.mjs, with request/response over IPC. */
function forkRunners() {
  const child = fork(`${ROOT}bench/fleet-runners.mjs`, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = new Map();
  let seq = 0;
  child.on('message', (m) => {
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    m.error ? w?.reject(new Error(m.error)) : w?.resolve(m);
  });
  child.on('exit', (code, signal) => {
    for (const w of waiting.values()) w.reject(new Error(`fleet child exited (${code ?? signal})`));
  });
  return {
    child,
    pid: child.pid,
    ask: (cmd, body = {}) => new Promise((resolve, reject) => {
      const id = ++seq;
      waiting.set(id, { resolve, reject });
      child.send({ id, cmd, ...body });
    }),
  };
}

async function fleet(n) {
  const dir = await mkdtemp(join(tmpdir(), 'rbtk-bench-fleet-'));
  const offlineAt = new Map();
  const coord = await startCoordinator(
    dir,
    ['--token-rotation', '0s', '--heartbeat-interval', `${HEARTBEAT_MS}ms`, '--offline-after', `${OFFLINE_AFTER_MS}ms`],
    {
      onLine(line) {
        if (!line.includes('"runner offline"')) return;
        const l = JSON.parse(line);
        offlineAt.set(l.runnerId, l.time);
      },
    },
  );
  const children = [];
  try {
    const { url, admin } = coord;
    const t0 = performance.now();
    const tokens = await registerRunners(url, admin, { count: n });
    const registerSeconds = (performance.now() - t0) / 1000;
    progress(`${n}: registered in ${fmt(registerSeconds, 1)} s (${fmt(n / registerSeconds, 0)}/s)`);

    // The sample in a child of its own, so it can be stopped alone; the rest in chunks of PER_CHILD.
    const chunks = [tokens.slice(0, SAMPLE)];
    for (let i = SAMPLE; i < n; i += PER_CHILD) chunks.push(tokens.slice(i, i + PER_CHILD));
    const t1 = performance.now();
    const connected = await Promise.all(
      chunks.map(async (chunk) => {
        const c = forkRunners();
        children.push(c);
        return c.ask('connect', { url, tokens: chunk });
      }),
    );
    const connectSeconds = (performance.now() - t1) / 1000;
    const sampleIds = connected[0].runnerIds;
    progress(`${n}: connected in ${fmt(connectSeconds, 1)} s over ${children.length} processes; warming up for one heartbeat interval`);
    await sleep(HEARTBEAT_MS + 1_000);

    await Promise.all(children.map((c) => c.ask('reset')));
    progress(`${n}: measuring for ${WINDOW_MS / 1000} s`);
    const [coordinator, ...runnerProcs] = await measureProcesses([coord.pid, ...children.map((c) => c.pid)], WINDOW_MS);
    const stats = await Promise.all(children.map((c) => c.ask('stats')));
    const sum = (key) => stats.reduce((s, x) => s + x[key], 0);
    const heartbeat = summarize(stats.flatMap((s) => s.heartbeatMs));
    const rotation = summarize(stats.flatMap((s) => s.rotationMs));
    const windowSeconds = coordinator.seconds;

    // Offline: freeze the sample's process, wait for the coordinator to notice every runner in it.
    const offlineBefore = new Set(offlineAt.keys());
    const sample = children[0];
    // Each OFFLINE mark is a durable commit, and ticks run one after another: a stalled fdatasync delays the next marks.
    const syncsBefore = await walSyncBuckets(url);
    sample.child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    progress(`${n}: stopped ${SAMPLE} runners; waiting for OFFLINE (--offline-after ${OFFLINE_AFTER_MS / 1000}s)`);
    const deadline = Date.now() + HEARTBEAT_MS + OFFLINE_AFTER_MS + 10_000;
    while (!sampleIds.every((id) => offlineAt.has(id)) && Date.now() < deadline) await sleep(50);
    const late = [];
    let missed = 0;
    for (const id of sampleIds) {
      const r = await api(url, admin, 'GET', `/v1/runners/${id}`);
      if (!offlineAt.has(id)) {
        missed++;
        progress(`${n}: runner ${id} not marked OFFLINE in time: ${r.status}, last heartbeat ${r.lastHeartbeatAt}`);
        continue;
      }
      if (r.status !== 'OFFLINE') throw new Error(`runner ${id} logged offline but shows ${r.status}`);
      late.push(offlineAt.get(id) - Date.parse(r.lastHeartbeatAt) - OFFLINE_AFTER_MS);
    }
    const wronglyOffline = [...offlineAt.keys()].filter((id) => !offlineBefore.has(id) && !sampleIds.includes(id)).length + offlineBefore.size;
    const walSyncs = walSyncsBetween(syncsBefore, await walSyncBuckets(url), STALL_MS);
    const offline = { ...summarize(late), min: Math.min(...late), missed, waitedMs: Date.now() - stoppedAt, walSyncs };

    return {
      runners: n,
      processes: children.length,
      registerSeconds,
      connectSeconds,
      windowSeconds,
      coordinator: { cpuCore: coordinator.cpuCore, rssBytes: coordinator.rssBytes, maxRssBytes: coordinator.maxRssBytes, peakRssBytes: coordinator.peakRssBytes },
      runnerProcesses: { cpuCore: runnerProcs.reduce((s, p) => s + p.cpuCore, 0), rssBytes: runnerProcs.reduce((s, p) => s + p.rssBytes, 0) },
      heartbeatsPerSecond: sum('heartbeats') / windowSeconds,
      acks: heartbeat.n,
      rotations: rotation.n,
      heartbeats: sum('heartbeats'),
      closes: sum('closes'),
      errors: sum('errors'),
      heartbeat,
      rotation,
      slowHeartbeats: stats.flatMap((s) => s.slow).sort((a, b) => a[0] - b[0]),
      offline,
      wronglyOffline,
    };
  } finally {
    await Promise.all(children.map((c) => (c.child.kill('SIGCONT'), c.ask('exit').catch(() => {}), stopProcess(c.child, 2_000))));
    await stopProcess(coord.child);
    await rm(dir, { recursive: true, force: true });
  }
}

const needed = Math.max(...SIZES) + 1_000;
if (openFileLimit() < needed) {
  console.error(
    `bench:fleet: the open-file limit is ${openFileLimit()}, the coordinator needs about ${needed} for ${Math.max(...SIZES)} runners. ` +
      `Raise it (ulimit -n ${needed}; npm run bench:fleet tries) or pass fewer --sizes=.`,
  );
  process.exit(1);
}

const results = [];
for (const n of SIZES) results.push(await fleet(n));

const mb = (b) => fmt(b / MiB, 0);
const rows = results.map((r) => ({
  runners: r.runners,
  'coord CPU (core)': fmt(r.coordinator.cpuCore, 3),
  'coord RSS MB': `${mb(r.coordinator.rssBytes)} (max ${mb(r.coordinator.maxRssBytes)})`,
  'hb/s': fmt(r.heartbeatsPerSecond, 0),
  'hb→ack p50': fmt(r.heartbeat.p50, 2),
  'hb→ack p99': fmt(r.heartbeat.p99, 2),
  'hb→ack max': fmt(r.heartbeat.max, 1),
  'rotation p99': fmt(r.rotation.p99, 2),
  'OFFLINE after threshold ms (min/p50/max)': `${fmt(r.offline.min, 0)} / ${fmt(r.offline.p50, 0)} / ${fmt(r.offline.max, 0)}`,
  note: [
    `${r.heartbeats} heartbeats, ${r.acks} acks, ${r.rotations} rotations confirmed`,
    r.closes ? `${r.closes} sockets closed` : '',
    r.errors ? `${r.errors} error frames` : '',
    r.wronglyOffline ? `${r.wronglyOffline} live runners marked OFFLINE` : '',
    r.offline.missed ? `${r.offline.missed} stopped runners not marked OFFLINE in time` : '',
    // The histogram's last bound is 1 s: a slower one is only known to be over it.
    `while OFFLINE was marked, the slowest WAL fdatasync ${Number.isFinite(r.offline.walSyncs.slowestUnder) ? `≤ ${fmt(r.offline.walSyncs.slowestUnder, 0)}` : '> 1000'} ms` +
      (r.offline.walSyncs.stalls ? ` (${r.offline.walSyncs.stalls} over ${STALL_MS} ms, together ≥ ${fmt(r.offline.walSyncs.stalledAtLeastMs, 0)} ms)` : ''),
    `runner procs ${fmt(r.runnerProcesses.cpuCore, 2)} core`,
  ]
    .filter(Boolean)
    .join('; '),
}));
const largest = results.find((r) => r.runners === 10_000) ?? results[results.length - 1];
const targets = [
  { target: `${largest.runners} runners: coordinator CPU < ${TARGET_CPU} core`, measured: fmt(largest.coordinator.cpuCore, 3), pass: largest.coordinator.cpuCore < TARGET_CPU },
  { target: `${largest.runners} runners: coordinator RSS < 512 MB`, measured: `${mb(largest.coordinator.maxRssBytes)} MB`, pass: largest.coordinator.maxRssBytes < TARGET_RSS },
  ...results.map((r) => ({
    target: `${r.runners} runners: OFFLINE ≤ ${TARGET_OFFLINE_LATE_MS} ms after --offline-after`,
    measured: `max ${fmt(r.offline.max, 0)} ms late (${r.offline.n} runners${r.offline.missed ? `, ${r.offline.missed} never marked` : ''})`,
    pass: r.offline.max <= TARGET_OFFLINE_LATE_MS && r.offline.missed === 0 && r.wronglyOffline === 0,
  })),
];

console.log(`\nrbtk fleet benchmark — ${JSON.stringify(machine())}`);
console.log(`heartbeat every ${HEARTBEAT_MS / 1000} s, token rotation on each, --offline-after ${OFFLINE_AFTER_MS / 1000}s; window ${WINDOW_MS / 1000} s; latencies in ms at the runner\n`);
printTable(rows, Object.keys(rows[0]));
console.log('');
for (const r of results) {
  console.log(`setup, not measured: ${r.runners} registrations in ${fmt(r.registerSeconds, 1)} s (${fmt(r.runners / r.registerSeconds, 0)}/s, 8 at a time; nothing rate-limits them), connected in ${fmt(r.connectSeconds, 1)} s over ${r.processes} processes`);
}
console.log('');
printTable(targets.map((t) => ({ ...t, result: t.pass ? 'PASS' : 'FAIL' })), ['target', 'measured', 'result']);
const file = await saveResults('fleet', { machine: machine(), quick: QUICK, heartbeatMs: HEARTBEAT_MS, offlineAfterMs: OFFLINE_AFTER_MS, windowMs: WINDOW_MS, perChild: PER_CHILD, sample: SAMPLE, results, targets });
console.log(`\nsaved ${file}`);
