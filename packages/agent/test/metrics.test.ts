import { createServer } from 'node:net';
import { join } from 'node:path';
import { parseHostPort, type Welcome } from '@rbtk/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../src/config/load.js';
import { writeConfig } from '../src/config/write.js';
import { DaemonState } from '../src/daemon-state.js';
import { runHeartbeatLoop } from '../src/heartbeat.js';
import { AgentMetrics } from '../src/metrics/agent-metrics.js';
import { startMetricsServer, type MetricsServer } from '../src/metrics/metrics-server.js';
import { memoryLogger, runnerConfig, tempDir } from './helpers/fixtures.js';

/*
 * metrics_listen on its own: the runner.yaml key, the HTTP server with real
 * sockets, and what each endpoint says as the daemon state changes. The whole
 * daemon against a real coordinator is in test/stats-metrics.test.ts.
 */

const welcome: Welcome = {
  type: 'welcome',
  runnerId: 'runner0000000001',
  name: 'host-a',
  pool: 'ci',
  project: 'default',
  status: 'ONLINE',
  heartbeatIntervalMs: 1000,
  offlineAfterMs: 5000,
  serverTime: new Date().toISOString(),
};

describe('metrics_listen in runner.yaml', () => {
  const base = "url: http://127.0.0.1:7420\nrunner_id: r1\ntoken: rbtk_run_a_b\nname: host-a\n";

  it('takes HOST:PORT and [IPv6]:PORT', () => {
    for (const listen of ['127.0.0.1:9464', '0.0.0.0:9464', 'localhost:0', '[::1]:9464']) {
      expect(parseConfig(`${base}metrics_listen: "${listen}"\n`, 'runner.yaml').metrics_listen).toBe(listen);
    }
    expect(parseHostPort('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(parseConfig(base, 'runner.yaml').metrics_listen).toBeUndefined();
  });

  it('refuses anything else, naming the key', () => {
    for (const listen of ['9464', ':9464', '127.0.0.1', '127.0.0.1:65536', 'http://127.0.0.1:9464', '::1:9464', 'host name:1']) {
      expect(() => parseConfig(`${base}metrics_listen: "${listen}"\n`, 'runner.yaml'), listen).toThrow(
        /runner\.yaml: metrics_listen: write it as HOST:PORT/,
      );
    }
  });

  it('survives the rewrite of a token rotation', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const path = join(dir, 'runner.yaml');
      await writeConfig(path, runnerConfig('http://127.0.0.1:7420', { metrics_listen: '127.0.0.1:9464' }));
      expect((await loadConfig(path)).metrics_listen).toBe('127.0.0.1:9464');
    } finally {
      await cleanup();
    }
  });
});

describe('the runner metrics server', () => {
  let state: DaemonState;
  let metrics: AgentMetrics;
  let server: MetricsServer;

  beforeEach(async () => {
    state = new DaemonState(runnerConfig('http://127.0.0.1:7420'), '0.1.0');
    metrics = new AgentMetrics(state);
    server = await startMetricsServer('127.0.0.1:0', metrics, memoryLogger().logger);
  });
  afterEach(() => server.close());

  it('is ready only while connected, and healthy all along', async () => {
    const get = async (path: string) => {
      const res = await fetch(`${server.url}${path}`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect(await get('/healthz')).toEqual({ status: 200, body: { ok: true } });
    expect(await get('/readyz')).toMatchObject({
      status: 503,
      body: { ok: false, connected: false, reason: 'not connected to the coordinator yet' },
    });
    state.failed('connect ECONNREFUSED 127.0.0.1:7420');
    expect((await get('/readyz')).body.reason).toBe('connect ECONNREFUSED 127.0.0.1:7420');
    state.connected(welcome);
    expect(await get('/readyz')).toMatchObject({ status: 200, body: { ok: true, connected: true, status: 'ONLINE' } });
    state.disconnected('closed with code 1001: coordinator shutting down');
    expect(await get('/readyz')).toMatchObject({ status: 503, body: { reason: 'closed with code 1001: coordinator shutting down' } });
    expect(await get('/healthz')).toEqual({ status: 200, body: { ok: true } });
    expect((await get('/nope')).status).toBe(404);
  });

  it('serves counters that move, and the series exist from the start', async () => {
    const scrape = async () => {
      const res = await fetch(`${server.url}/metrics`);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      return res.text();
    };
    const before = await scrape();
    expect(before).toMatch(/^rbtk_runner_jobs_total\{result="succeeded"\} 0$/m);
    expect(before).toMatch(/^rbtk_runner_heartbeat_failures_total\{reason="no_ack"\} 0$/m);
    expect(before).toMatch(/^rbtk_runner_connected 0$/m);
    expect(before).toMatch(/^rbtk_runner_reconnects_total 0$/m);

    metrics.jobFinished('succeeded');
    metrics.jobFinished('failed');
    metrics.heartbeatFailed('no_ack');
    state.reconnecting();
    state.reconnecting();
    state.rotated();
    state.connected(welcome);
    const after = await scrape();
    expect(after).toMatch(/^rbtk_runner_jobs_total\{result="succeeded"\} 1$/m);
    expect(after).toMatch(/^rbtk_runner_jobs_total\{result="failed"\} 1$/m);
    expect(after).toMatch(/^rbtk_runner_heartbeat_failures_total\{reason="no_ack"\} 1$/m);
    expect(after).toMatch(/^rbtk_runner_reconnects_total 2$/m);
    expect(after).toMatch(/^rbtk_runner_token_rotations_total 1$/m);
    expect(after).toMatch(/^rbtk_runner_connected 1$/m);
    expect(after).toMatch(/^rbtk_runner_jobs_running 0$/m);
  });

  it('refuses to start on an address in use, saying which', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    try {
      await expect(startMetricsServer(`127.0.0.1:${port}`, metrics, memoryLogger().logger)).rejects.toThrow(
        `metrics_listen 127.0.0.1:${port}: listen EADDRINUSE`,
      );
    } finally {
      busy.close();
    }
  });
});

describe('heartbeat failures', () => {
  it('are reported as no_ack when the coordinator stopped answering, send_failed when the socket is gone', async () => {
    const seen: string[] = [];
    const loop = (send: () => boolean, lastAckAt: number) =>
      runHeartbeatLoop(
        { send, intervalMs: () => 5, lastAckAt: () => lastAckAt, staleAfterMs: () => 1000, onFailed: (r) => seen.push(r) },
        new AbortController().signal,
      );
    expect(await loop(() => true, Date.now() - 10_000)).toBe('stale');
    expect(await loop(() => false, Date.now())).toBe('closed');
    expect(seen).toEqual(['no_ack', 'send_failed']);
  });
});
