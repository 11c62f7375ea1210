import { appendFile, readFile } from 'node:fs/promises';
import { PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, type PoolStats } from '@rbtk/protocol';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from './helpers/fleet.js';
import { Jobs, shell } from './helpers/jobs.js';
import { waitFor, type Proc } from './helpers/processes.js';
import { find, scrape, value, type Exposition } from './helpers/prometheus.js';

/*
 * Stats and metrics end to end: a real coordinator, a real rbtk-runner running
 * shell jobs, the rbtk CLI, and Prometheus scrapes of both daemons.
 * Pools: build (runner r1, metrics on), idle (a registered runner that never
 * connects, so its jobs stay queued), spare (runner r2, started later).
 */
describe('stats and metrics', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  let r1: Proc;
  let r1Metrics = '';
  const ids: Record<string, string> = {};

  /** Turns on metrics_listen (any free port) in a registered runner's runner.yaml. */
  const enableMetrics = (name: string) => appendFile(fleet.configPath(name), 'metrics_listen: 127.0.0.1:0\n');
  const metricsUrl = async (proc: Proc) => (await proc.waitForLog((l) => l.msg === 'metrics listening')).url as string;
  const coordinatorMetrics = () => scrape(`${fleet.url}/metrics`);

  beforeAll(async () => {
    fleet = await Fleet.create();
    // Exact counts below: an accept that a slow CI disk delays past the 10 s default would add an attempt
    // (the job still ends once: test/jobs-slots.test.ts), so this file gives accepts a minute. Job counts on
    // /metrics are fresh at every scrape (--metrics-refresh 0s) so that one job more shows at once.
    await fleet.startCoordinator({ offlineAfter: '2s', heartbeatInterval: '200ms', tokenRotation: '1s', acceptTimeout: '60s', metricsRefresh: '0s' });
    jobs = new Jobs(fleet);
    for (const pool of ['build', 'idle', 'spare']) expect((await fleet.rbtk(['pool', 'create', pool])).code).toBe(0);
    ids.r1 = await fleet.registerRunner('build', 'r1', '--executor', 'shell');
    ids.parked = await fleet.registerRunner('idle', 'parked', '--executor', 'shell');
    ids.r2 = await fleet.registerRunner('spare', 'r2', '--executor', 'shell');
    await enableMetrics('r1');
    await enableMetrics('r2');
    r1 = fleet.startRunner('r1');
    r1Metrics = await metricsUrl(r1);
    await waitFor('r1 ONLINE', async () => (await fleet.runnerStatus(ids.r1!)) === 'ONLINE');
  });

  afterAll(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  it('counts a known set of jobs exactly: 3 succeed, 2 fail, 1 cancelled, 1 queued where no runner is free', async () => {
    const submitted = [];
    for (let i = 0; i < 3; i++) submitted.push(await jobs.submit(shell(`echo ok-${i}; sleep 0.1`)));
    for (let i = 0; i < 2; i++) submitted.push(await jobs.submit(shell('exit 3')));
    await Promise.all(submitted.map((j) => jobs.waitForState(j.id, ['succeeded', 'failed'])));
    const cancelled = await jobs.submit(shell('sleep 30'));
    await jobs.waitForState(cancelled.id, ['running']);
    await jobs.cancel(cancelled.id);
    await jobs.waitForState(cancelled.id, ['cancelled']);
    const queued = await jobs.submit(shell('true', { pool: 'idle' }));
    expect(queued.state).toBe('queued');

    const build = await fleet.rbtkJson<PoolStats>(['stats', '--pool', 'build']);
    expect(build).toMatchObject({
      pool: 'build',
      project: 'default',
      jobs: { queued: 0, assigned: 0, running: 0, succeeded: 3, failed: 2, cancelled: 1, timed_out: 0 },
      finished: { last5m: { minutes: 5, count: 6, perMinute: 1.2 }, last60m: { minutes: 60, count: 6, perMinute: 0.1 } },
      runners: { online: 1, draining: 0, offline: 0 },
    });
    // All six started on r1 (the cancelled one too), so all six are in the 60-minute sample.
    expect(build.latency).toMatchObject({ windowMinutes: 60, jobs: 6 });
    const { queueWaitMs: wait, runTimeMs: run } = build.latency;
    for (const p of [wait, run]) {
      expect(p.p50).not.toBeNull();
      expect(p.p95!).toBeGreaterThanOrEqual(p.p50!);
    }
    // Half the jobs ran in well under the 30 s the cancelled one would have taken.
    expect(run.p50!).toBeLessThan(10_000);

    const idle = await fleet.rbtkJson<PoolStats>(['stats', '--pool', 'idle']);
    expect(idle).toMatchObject({
      jobs: { queued: 1, assigned: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0, timed_out: 0 },
      finished: { last5m: { count: 0 }, last60m: { count: 0 } },
      latency: { jobs: 0, queueWaitMs: { p50: null, p95: null }, runTimeMs: { p50: null, p95: null } },
      runners: { online: 0, draining: 0, offline: 1 },
    });

    // The REST route is the same document.
    const res = await fetch(`${fleet.url}/v1/pools/build/stats`, { headers: { authorization: `Bearer ${fleet.adminToken}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ pool: 'build', jobs: build.jobs });
    expect((await fetch(`${fleet.url}/v1/pools/build/stats`)).status).toBe(401);
    expect((await fleet.rbtk(['stats', '--pool', 'nope'])).code).toBe(4);

    // Without --pool: every pool of the project.
    const all = await fleet.rbtkJson<PoolStats[]>(['stats']);
    expect(all.map((s) => s.pool).sort()).toEqual(['build', 'idle', 'spare']);
    // One request for all of them (GET /v1/stats), each the same as its pool's own route (but for `at`).
    const auth = { headers: { authorization: `Bearer ${fleet.adminToken}` } };
    const listed = (await (await fetch(`${fleet.url}/v1/stats`, auth)).json()) as PoolStats[];
    const single = (await (await fetch(`${fleet.url}/v1/pools/build/stats`, auth)).json()) as PoolStats;
    expect({ ...listed.find((s) => s.pool === 'build'), at: null }).toEqual({ ...single, at: null });
    expect((await fetch(`${fleet.url}/v1/stats`)).status).toBe(401);
    const table = await fleet.rbtk(['stats']);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^POOL\s+QUEUED\s+ASSIGNED\s+RUNNING\s+SUCCEEDED\s+FAILED\s+CANCELLED\s+TIMED_OUT\s+DONE\/MIN 5M/);
    expect(lines.find((l) => l.startsWith('build'))).toMatch(/^build\s+0\s+0\s+0\s+3\s+2\s+1\s+0\s+1\.2\s+0\.1\s/);
    expect(lines.find((l) => l.startsWith('idle'))).toMatch(/^idle\s+1\s+0\s+0\s+0\s+0\s+0\s+0\s+0\s+0\s+- \/ -\s+- \/ -\s+0\/0\/1$/);
    expect(table.stderr).toMatch(/last 60m/);
    const one = await fleet.rbtk(['stats', '--pool', 'build']);
    expect(one.stdout).toMatch(/^jobs:\s+queued 0, assigned 0, running 0, succeeded 3, failed 2, cancelled 1, timed_out 0$/m);
    expect(one.stdout).toMatch(/^finished:\s+6 in the last 5m \(1\.2\/min\), 6 in the last 60m \(0\.1\/min\)$/m);
    expect(one.stdout).toMatch(/^runners:\s+1 online, 0 draining, 0 offline$/m);
  });

  it('serves /metrics without a token, in the text format, with series per pool, state and status', async () => {
    const m = await coordinatorMetrics();
    expect(m.types.get('rbtk_jobs')).toBe('gauge');
    expect(m.types.get('rbtk_runners')).toBe('gauge');
    expect(m.types.get('rbtk_dispatch_latency_seconds')).toBe('histogram');
    expect(m.types.get('rbtk_queue_wait_seconds')).toBe('histogram');
    expect(m.types.get('rbtk_store_wal_sync_seconds')).toBe('histogram');
    expect(m.types.get('rbtk_heartbeats_received_total')).toBe('counter');
    expect(m.types.get('rbtk_token_rotations_total')).toBe('counter');
    expect(m.types.get('rbtk_auth_failures_total')).toBe('counter');
    expect(m.types.get('rbtk_ws_sessions')).toBe('gauge');
    expect(find(m, 'process_cpu_user_seconds_total')).toHaveLength(1);

    const pool = (p: string) => ({ project: 'default', pool: p });
    expect(value(m, 'rbtk_jobs', { ...pool('build'), state: 'succeeded' })).toBe(3);
    expect(value(m, 'rbtk_jobs', { ...pool('build'), state: 'failed' })).toBe(2);
    expect(value(m, 'rbtk_jobs', { ...pool('build'), state: 'cancelled' })).toBe(1);
    expect(value(m, 'rbtk_jobs', { ...pool('idle'), state: 'queued' })).toBe(1);
    expect(find(m, 'rbtk_jobs', pool('spare'))).toHaveLength(7); // every state, all 0
    expect(find(m, 'rbtk_jobs', pool('spare')).every((s) => s.value === 0)).toBe(true);
    expect(value(m, 'rbtk_runners', { ...pool('build'), status: 'ONLINE' })).toBe(1);
    expect(value(m, 'rbtk_runners', { ...pool('idle'), status: 'OFFLINE' })).toBe(1);
    expect(value(m, 'rbtk_runners', { ...pool('spare'), status: 'DRAINING' })).toBe(0);
    expect(value(m, 'rbtk_ws_sessions', { kind: 'runner' })).toBe(1);
    expect(value(m, 'rbtk_ws_sessions', { kind: 'submitter' })).toBe(0);

    // Six jobs of build were assigned and started; the histograms' buckets end in +Inf = count.
    for (const h of ['rbtk_dispatch_latency_seconds', 'rbtk_queue_wait_seconds']) {
      const count = value(m, `${h}_count`, pool('build'));
      expect(count).toBe(6);
      expect(value(m, `${h}_bucket`, { ...pool('build'), le: '+Inf' })).toBe(count);
      expect(find(m, `${h}_bucket`, pool('build')).length).toBeGreaterThan(5);
    }
    // r1 rotated its token at least once in the seconds it has been up (--token-rotation 1s).
    await waitFor('a token rotation', async () => value(await coordinatorMetrics(), 'rbtk_token_rotations_total') > 0, 10_000, 200);
  });

  it('moves its counters: heartbeats between two scrapes, jobs by state after a job, auth failures', async () => {
    const first = await coordinatorMetrics();
    await new Promise((r) => setTimeout(r, 600)); // three heartbeats at 200 ms
    const second = await coordinatorMetrics();
    expect(value(second, 'rbtk_heartbeats_received_total')).toBeGreaterThan(value(first, 'rbtk_heartbeats_received_total'));

    const job = await jobs.submit(shell('echo one more'));
    await jobs.waitForState(job.id, ['succeeded']);
    const after = await coordinatorMetrics();
    const succeeded = (m: Exposition) => value(m, 'rbtk_jobs', { project: 'default', pool: 'build', state: 'succeeded' });
    expect(succeeded(after)).toBe(succeeded(second) + 1);
    expect(value(after, 'rbtk_dispatch_latency_seconds_count', { pool: 'build' })).toBe(7);
    // The job's submit, assignment and result each waited for a WAL fdatasync (some shared with others).
    const syncs = (m: Exposition) => value(m, 'rbtk_store_wal_sync_seconds_count');
    expect(syncs(after)).toBeGreaterThan(syncs(second));
    expect(value(after, 'rbtk_store_wal_sync_seconds_bucket', { le: '+Inf' })).toBe(syncs(after));

    const failures = (m: Exposition, source: string, reason: string) =>
      find(m, 'rbtk_auth_failures_total', { source, reason }).reduce((n, s) => n + s.value, 0);
    await fetch(`${fleet.url}/v1/pools`);
    await fetch(`${fleet.url}/v1/pools`, { headers: { authorization: 'Bearer rbtk_api_nope_nope' } });
    await new Promise<void>((resolve) => {
      // A runner upgrade without a token: refused with 401 before any WebSocket.
      const ws = new WebSocket(`${fleet.url.replace(/^http/, 'ws')}/v1/runner/ws`, {
        headers: { [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) },
      });
      ws.on('unexpected-response', (_req, res) => {
        expect(res.statusCode).toBe(401);
        resolve();
      });
      ws.on('error', () => resolve());
    });
    const m = await coordinatorMetrics();
    expect(failures(m, 'api', 'missing_token')).toBe(failures(after, 'api', 'missing_token') + 1);
    expect(failures(m, 'api', 'unknown_token') + failures(m, 'api', 'malformed_token')).toBe(
      failures(after, 'api', 'unknown_token') + failures(after, 'api', 'malformed_token') + 1,
    );
    expect(failures(m, 'runner', 'missing_token')).toBe(failures(after, 'runner', 'missing_token') + 1);
  });

  it("serves the runner's own /metrics, /healthz and /readyz on metrics_listen", async () => {
    const ready = await fetch(`${r1Metrics}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ok: true, connected: true, status: 'ONLINE' });
    expect((await fetch(`${r1Metrics}/healthz`)).status).toBe(200);
    expect((await fetch(`${r1Metrics}/nope`)).status).toBe(404);

    const m = await scrape(`${r1Metrics}/metrics`);
    expect(m.types.get('rbtk_runner_jobs_total')).toBe('counter');
    expect(value(m, 'rbtk_runner_jobs_total', { result: 'succeeded' })).toBe(4);
    expect(value(m, 'rbtk_runner_jobs_total', { result: 'failed' })).toBe(2);
    expect(value(m, 'rbtk_runner_jobs_total', { result: 'cancelled' })).toBe(1);
    expect(value(m, 'rbtk_runner_jobs_total', { result: 'timed_out' })).toBe(0);
    expect(value(m, 'rbtk_runner_jobs_running')).toBe(0);
    expect(value(m, 'rbtk_runner_connected')).toBe(1);
    expect(value(m, 'rbtk_runner_reconnects_total')).toBe(0);
    expect(value(m, 'rbtk_runner_heartbeat_failures_total', { reason: 'no_ack' })).toBe(0);
    expect(value(m, 'rbtk_runner_token_rotations_total')).toBeGreaterThan(0);
    expect(find(m, 'process_resident_memory_bytes')).toHaveLength(1);
    // Rotations rewrote runner.yaml; the key stayed.
    expect(await readFile(fleet.configPath('r1'), 'utf8')).toMatch(/^metrics_listen: 127\.0\.0\.1:0$/m);

    // A running job shows in the gauge.
    const job = await jobs.submit(shell('sleep 30'));
    await jobs.waitForState(job.id, ['running']);
    expect(value(await scrape(`${r1Metrics}/metrics`), 'rbtk_runner_jobs_running')).toBe(1);
    await jobs.cancel(job.id);
    await jobs.waitForState(job.id, ['cancelled']);
  });

  it('answers /readyz 503 before the runner connects and after the coordinator stops, 200 once connected', async () => {
    await fleet.coordinator.stop('SIGTERM');
    const down = await waitFor('r1 not ready', async () => {
      const res = await fetch(`${r1Metrics}/readyz`);
      return res.status === 503 ? ((await res.json()) as { ok: boolean; connected: boolean; reason: string }) : undefined;
    });
    expect(down).toMatchObject({ ok: false, connected: false });
    expect(down.reason).toMatch(/\S/); // the close (1001) or the failed reconnect, in words
    expect((await fetch(`${r1Metrics}/healthz`)).status).toBe(200);

    // r2 starts while there is no coordinator: up (healthz) but not ready.
    const r2 = fleet.startRunner('r2');
    const r2Metrics = await metricsUrl(r2);
    expect((await fetch(`${r2Metrics}/healthz`)).status).toBe(200);
    const before = await fetch(`${r2Metrics}/readyz`);
    expect(before.status).toBe(503);
    expect(await before.json()).toMatchObject({ ok: false, connected: false, reason: expect.any(String) });
    expect(value(await scrape(`${r2Metrics}/metrics`), 'rbtk_runner_connected')).toBe(0);

    await fleet.startCoordinator();
    for (const url of [r1Metrics, r2Metrics]) {
      await waitFor(`${url} ready`, async () => (await fetch(`${url}/readyz`)).status === 200, 45_000, 200);
    }
    expect(value(await scrape(`${r1Metrics}/metrics`), 'rbtk_runner_reconnects_total')).toBeGreaterThan(0);
    await r2.stop();
  });

  it('counts a heartbeat failure when the coordinator stops answering', async () => {
    const before = value(await scrape(`${r1Metrics}/metrics`), 'rbtk_runner_heartbeat_failures_total', { reason: 'no_ack' });
    fleet.coordinator.kill('SIGSTOP');
    try {
      // offline-after is 2 s: the runner gives up on the silent coordinator after that.
      await waitFor(
        'a no_ack heartbeat failure',
        async () => value(await scrape(`${r1Metrics}/metrics`), 'rbtk_runner_heartbeat_failures_total', { reason: 'no_ack' }) > before,
        15_000,
        200,
      );
    } finally {
      fleet.coordinator.kill('SIGCONT');
    }
  });
});
