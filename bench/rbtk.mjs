// rbtk pieces of the benchmarks: the coordinator and agent bins as child
// processes, the REST API, a simulated runner speaking the real protocol and a
// submitter on the submitter WebSocket.
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER } from '@rbtk/protocol';
import { ROOT, sleep, startProcess, waitUntil } from './lib.mjs';

export const COORDINATOR_BIN = `${ROOT}packages/coordinator/bin/rbtk-coordinator.js`;
export const AGENT_BIN = `${ROOT}packages/agent/bin/rbtk-runner.js`;

export const wsUrl = (url, path) => url.replace(/^http/, 'ws') + path;
export const open = (ws) => new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));

/**
 * `rbtk-coordinator serve` on a free port with its data in `dir`; `args` adds
 * flags (e.g. --token-rotation 0s), `onLine` sees its log lines after startup.
 */
export async function startCoordinator(dir, args = [], { onLine } = {}) {
  // RBTK_BENCH_COORDINATOR_LOG=FILE keeps the coordinator's log lines (after startup) there.
  const logFile = process.env.RBTK_BENCH_COORDINATOR_LOG;
  const log = logFile ? createWriteStream(logFile, { flags: 'a' }) : undefined;
  const { child, line } = await startProcess(
    COORDINATOR_BIN,
    ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir, ...args],
    (l) => l.msg === 'listening',
    {},
    // e.g. RBTK_BENCH_COORDINATOR_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the coordinator.
    process.env.RBTK_BENCH_COORDINATOR_FLAGS?.split(' ').filter(Boolean) ?? [],
    { onLine: log ? (l) => (log.write(`${l}\n`), onLine?.(l)) : onLine },
  );
  const admin = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
  return { child, pid: child.pid, url: line.url, admin };
}

export async function api(url, token, method, path, body) {
  const res = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? undefined : res.json();
}

/** The coordinator's WAL fdatasync histogram (rbtk_store_wal_sync_seconds): cumulative counts by bucket bound (seconds). */
export async function walSyncBuckets(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const buckets = new Map();
  for (const m of text.matchAll(/^rbtk_store_wal_sync_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)) {
    buckets.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  }
  return buckets;
}

/**
 * The fdatasyncs between two readings of walSyncBuckets: how many, the bucket
 * bound (ms) that the median, the 99th percentile and the slowest fall under,
 * how many took over `stallMs`, and a floor under the time they took together
 * (each counted at its bucket's lower bound): the time every dispatch waited
 * for the disk, whatever the coordinator did.
 */
export function walSyncsBetween(before, after, stallMs = 5) {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const count = (bound) => after.get(bound) - (before.get(bound) ?? 0);
  const n = count(Infinity);
  const under = (p) => bounds.find((b) => count(b) >= (p / 100) * n) * 1000;
  let stalls = 0;
  let stalledMs = 0;
  bounds.forEach((b, i) => {
    const lower = (bounds[i - 1] ?? 0) * 1000;
    if (lower < stallMs) return;
    const inBucket = count(b) - count(bounds[i - 1]);
    stalls += inBucket;
    stalledMs += inBucket * lower;
  });
  return { n, p50Under: under(50), p99Under: under(99), slowestUnder: under(100), stallMs, stalls, stalledAtLeastMs: stalledMs };
}

/**
 * Registers `count` runners in `pool` (created if missing) with one
 * registration token of that many uses, `concurrency` requests at a time.
 * Resolves with their runner tokens, in name order.
 */
export async function registerRunners(url, admin, { pool = 'bench', count, prefix = 'sim', concurrency = 8 }) {
  const pools = await api(url, admin, 'GET', '/v1/pools');
  if (!pools.some((p) => p.name === pool)) await api(url, admin, 'POST', '/v1/pools', { name: pool });
  const reg = await api(url, admin, 'POST', `/v1/pools/${pool}/tokens`, { ttl: '1h', uses: count });
  const tokens = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const res = await fetch(`${url}/v1/runners/register`, {
        method: 'POST',
        headers: { authorization: `Bearer ${reg.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `${prefix}-${i}` }),
      });
      if (!res.ok) throw new Error(`register ${prefix}-${i}: ${res.status} ${await res.text()}`);
      tokens[i] = (await res.json()).token;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return tokens;
}

/** The agent's heartbeat spacing (packages/agent/src/heartbeat.ts): up to 10% early, never late. */
export const heartbeatDelay = (intervalMs) => Math.max(1, Math.round(intervalMs * (1 - 0.1 * Math.random())));

const HELLO = {
  type: 'hello',
  agentVersion: 'bench',
  host: { hostname: 'sim', os: 'sim', arch: 'x64', cpus: 1, memoryBytes: 1 },
  held: [],
};

/**
 * A runner that speaks the real protocol (packages/protocol/src/messages.ts)
 * and completes every job at once: accept, started, result, then result_ack.
 *
 * It heartbeats as the agent does (unless `heartbeat: false`), every
 * heartbeatIntervalMs of the welcome (the first one at a random point of the
 * first interval, so a fleet's heartbeats spread out), and takes part in token
 * rotation: a rotatedToken in heartbeat_ack becomes its token (in memory; the
 * agent writes runner.yaml first) and is confirmed with token_confirm, which
 * the coordinator answers with token_confirmed. Without heartbeats the
 * coordinator marks it OFFLINE after --offline-after (60 s) whatever jobs it
 * runs, and a benchmark longer than that stalls with its jobs queued.
 *
 * Callbacks: onAssign(assign), onDone(resultAck), onHeartbeatAck(ms from
 * heartbeat sent to heartbeat_ack), onRotated(ms from heartbeat sent to
 * token_confirmed), onClose(code).
 */
export class SimRunner {
  constructor({ maxJobs = 1, heartbeat = true, onAssign, onDone, onHeartbeatAck, onRotated, onClose } = {}) {
    Object.assign(this, { maxJobs, heartbeat, onAssign, onDone, onHeartbeatAck, onRotated, onClose });
    this.seq = 0;
    this.sentAt = new Map();
    this.rotatingSince = new Map();
    this.lastHeartbeatAt = 0;
  }

  async connect(url, token) {
    this.token = token;
    this.ws = new WebSocket(wsUrl(url, '/v1/runner/ws'), {
      headers: { authorization: `Bearer ${token}`, [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) },
      perMessageDeflate: false,
    });
    await open(this.ws);
    const welcomed = new Promise((resolve, reject) => {
      this.welcomed = resolve;
      this.ws.once('close', (code) => reject(new Error(`runner socket closed (${code}) before welcome`)));
    });
    this.ws.on('message', (data) => this.handle(JSON.parse(data.toString())));
    this.ws.on('close', (code) => (this.stopHeartbeats(), this.onClose?.(code)));
    this.ws.on('error', () => {}); // followed by close
    this.send({ ...HELLO, capabilities: { executors: ['shell'], maxJobs: this.maxJobs, labels: {}, airgapped: false } });
    await welcomed;
  }

  send(frame) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  handle(m) {
    switch (m.type) {
      case 'welcome':
        this.runnerId = m.runnerId;
        if (this.heartbeat) this.scheduleHeartbeat(m.heartbeatIntervalMs, Math.random() * m.heartbeatIntervalMs);
        return this.welcomed();
      case 'heartbeat_ack': {
        const now = performance.now();
        const sent = this.sentAt.get(m.seq);
        this.sentAt.delete(m.seq);
        if (sent !== undefined) this.onHeartbeatAck?.(now - sent, sent);
        this.intervalMs = m.heartbeatIntervalMs;
        if (m.rotatedToken) {
          this.token = m.rotatedToken.token;
          this.rotatingSince.set(m.rotatedToken.id, sent ?? now);
          this.send({ type: 'token_confirm', tokenId: m.rotatedToken.id });
        }
        return;
      }
      case 'token_confirmed': {
        const since = this.rotatingSince.get(m.tokenId);
        this.rotatingSince.delete(m.tokenId);
        if (since !== undefined) this.onRotated?.(performance.now() - since);
        return;
      }
      case 'assign': {
        this.onAssign?.(m);
        const ids = { jobId: m.jobId, attempt: m.attempt };
        // The three frames leave in one write, as one TCP segment (ws keeps its socket as _socket).
        const socket = this.ws._socket;
        socket.cork();
        process.nextTick(() => socket.uncork());
        this.send({ type: 'accept', ...ids });
        this.send({ type: 'started', ...ids });
        this.send({ type: 'result', ...ids, outcome: 'succeeded', exitCode: 0, logBytes: 0 });
        return;
      }
      case 'result_ack':
        return this.onDone?.(m);
      case 'error':
        this.errors = (this.errors ?? 0) + 1;
        return;
    }
  }

  scheduleHeartbeat(intervalMs, delay = heartbeatDelay(intervalMs)) {
    this.intervalMs = intervalMs;
    this.timer = setTimeout(() => {
      const seq = this.seq++;
      this.sentAt.set(seq, performance.now());
      this.lastHeartbeatAt = Date.now();
      this.send({ type: 'heartbeat', seq });
      this.scheduleHeartbeat(this.intervalMs);
    }, delay);
  }

  stopHeartbeats() {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  close() {
    this.stopHeartbeats();
    this.ws.close();
  }
}

/** Submits over the submitter WebSocket, many requests in flight. */
export class Submitter {
  pending = new Map();
  seq = 0;

  async connect(url, token) {
    this.ws = new WebSocket(wsUrl(url, '/v1/jobs/ws'), {
      headers: { authorization: `Bearer ${token}`, [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) },
      perMessageDeflate: false,
    });
    await open(this.ws);
    this.ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      const p = this.pending.get(m.reqId);
      if (!p) return;
      this.pending.delete(m.reqId);
      m.type === 'error' ? p.reject(new Error(m.message)) : p.resolve(m.job);
    });
  }

  submit(spec) {
    const reqId = String(++this.seq);
    return new Promise((resolve, reject) => {
      this.pending.set(reqId, { resolve, reject });
      this.ws.send(JSON.stringify({ type: 'submit', reqId, spec }));
    });
  }

  close() {
    this.ws.close();
  }
}

export const TRUE_JOB = { pool: 'bench', executor: { type: 'shell', command: ['true'] } };

/**
 * Submits `jobs` TRUE_JOBs at `rate` a second, then waits until `done()`
 * counts them all finished. Resolves with each one's submit → assign latency
 * (ms), from `assignedAt` (job id → time) that the runners fill in. The
 * submit's start is kept until its answer names the job: the assign may reach
 * a runner first, so the two are paired up at the end.
 */
export async function pacedSubmits(submitter, { jobs, rate, assignedAt, done, timeoutMs = 30_000 }) {
  const submittedAt = new Map();
  const start = performance.now();
  const inflight = [];
  for (let i = 0; i < jobs; i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 1) await sleep(wait);
    const t0 = performance.now();
    inflight.push(submitter.submit(TRUE_JOB).then((job) => submittedAt.set(job.id, t0)));
  }
  await Promise.all(inflight);
  await waitUntil(() => done() >= jobs, timeoutMs, () => `${done()}/${jobs} paced jobs done`);
  return [...submittedAt].map(([id, t0]) => assignedAt.get(id) - t0);
}

/**
 * Submits `jobs` TRUE_JOBs as fast as they are answered, `inFlight` at a
 * time, then waits until `done()` counts them all finished (durable: their
 * result acknowledged). Resolves with the seconds from the first submit.
 */
export async function flatOutSubmits(submitter, { jobs, done, inFlight = 500, timeoutMs = 120_000 }) {
  const start = performance.now();
  const window = new Set();
  for (let sent = 0; sent < jobs; ) {
    while (window.size < inFlight && sent < jobs) {
      const p = submitter.submit(TRUE_JOB).then(() => window.delete(p));
      window.add(p);
      sent++;
    }
    await Promise.race(window);
  }
  await waitUntil(() => done() >= jobs, timeoutMs, () => `${done()}/${jobs} jobs done`);
  return (performance.now() - start) / 1000;
}

const execFileP = promisify(execFile);

/**
 * Registers a real `rbtk-runner` (shell executor) under `dir` and starts
 * `rbtk-runner run`; resolves once it logged `connected`.
 */
export async function startAgent(url, admin, dir, { name = 'agent', pool = 'bench', maxJobs = 1 } = {}) {
  const reg = await api(url, admin, 'POST', `/v1/pools/${pool}/tokens`, { ttl: '1h', uses: 1 });
  const config = join(dir, name, 'runner.yaml');
  await execFileP(process.execPath, [AGENT_BIN, 'register', '--url', url, '--token', reg.token, '--name', name, '--executor', 'shell', '--max-jobs', String(maxJobs), '--config', config]);
  // e.g. RBTK_BENCH_AGENT_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the agents.
  const flags = process.env.RBTK_BENCH_AGENT_FLAGS?.split(' ').filter(Boolean) ?? [];
  const { child } = await startProcess(AGENT_BIN, ['run', '--config', config], (l) => l.msg === 'connected', {}, flags);
  return { child, pid: child.pid, config };
}
