import { stat, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { askDaemon, fetchDaemonStatus, waitForIdle } from '../src/control/client.js';
import { daemonControlHandlers, HOST_DRAIN_REASON } from '../src/control/handlers.js';
import { startControlServer } from '../src/control/server.js';
import { DaemonState } from '../src/daemon-state.js';
import { DrainControl } from '../src/drain.js';
import type { JobStatus } from '../src/jobs/held-attempt.js';
import { memoryLogger, runnerConfig, tempDir } from './helpers/fixtures.js';

const handlersOf = (state: DaemonState, drain = new DrainControl()) => daemonControlHandlers(state, drain, memoryLogger().logger);

describe('control socket', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let socket: string;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    socket = join(dir, 'control.sock');
  });
  afterEach(() => cleanup());

  it('answers GET /status with the daemon state, mode 0660, and removes the socket on close', async () => {
    const state = new DaemonState(runnerConfig('http://127.0.0.1:7420'), '0.1.0');
    const server = await startControlServer(socket, handlersOf(state), memoryLogger().logger);
    try {
      expect((await stat(socket)).mode & 0o777).toBe(0o660);
      const answer = await fetchDaemonStatus(socket);
      expect(answer).toEqual({ running: true, status: state.snapshot() });
      expect(answer.running && answer.status).toMatchObject({ connected: false, runnerId: 'runner0000000001', pid: process.pid });
      expect(JSON.stringify(answer)).not.toContain('rbtk_run_');
    } finally {
      await server.close();
    }
    await expect(stat(socket)).rejects.toThrow(/ENOENT/);
    expect(await fetchDaemonStatus(socket)).toEqual({ running: false, reason: 'not running' });
  });

  it('replaces a stale socket file but refuses to start while another daemon answers', async () => {
    await writeFile(socket, '');
    const handlers = handlersOf(new DaemonState(runnerConfig('http://x'), '0.1.0'));
    const first = await startControlServer(socket, handlers, memoryLogger().logger);
    try {
      await expect(startControlServer(socket, handlers, memoryLogger().logger)).rejects.toThrow(/another rbtk-runner is already running/);
    } finally {
      await first.close();
    }
  });

  it('says "not running" for the socket file of a killed daemon, and starts over it', async () => {
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => console.log('up'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await once(child.stdout, 'data');
    child.kill('SIGKILL');
    await once(child, 'exit');
    expect((await stat(socket)).isSocket()).toBe(true);
    expect(await fetchDaemonStatus(socket)).toEqual({ running: false, reason: 'not running' });

    const server = await startControlServer(socket, handlersOf(new DaemonState(runnerConfig('http://x'), '0.1.0')), memoryLogger().logger);
    try {
      expect((await fetchDaemonStatus(socket)).running).toBe(true);
      const res = await new Promise<{ status?: number; body: string }>((resolve) =>
        request({ socketPath: socket, path: '/nope', method: 'POST' }, (r) => {
          let body = '';
          r.on('data', (d: Buffer) => (body += d.toString()));
          r.on('end', () => resolve({ status: r.statusCode, body }));
        }).end(),
      );
      expect(res.status).toBe(404);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'not_found' } });
    } finally {
      await server.close();
    }
  });
});

describe('drain and resume over the control socket', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let socket: string;
  let jobs: JobStatus[];
  let drain: DrainControl;
  let close: () => Promise<void>;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    socket = join(dir, 'control.sock');
    jobs = [{ jobId: 'job1', attempt: 1, state: 'running' }];
    drain = new DrainControl();
    const state = new DaemonState(runnerConfig('http://127.0.0.1:7420'), '0.1.0');
    state.trackJobs(() => jobs);
    state.trackDrain(drain, () => null);
    close = (await startControlServer(socket, daemonControlHandlers(state, drain, memoryLogger().logger), memoryLogger().logger)).close;
  });
  afterEach(async () => {
    await close();
    await cleanup();
  });

  it('drains (the job manager is refused new work), resumes, and says why it cannot resume a stop', async () => {
    const drained = await askDaemon(socket, 'drain');
    expect(drained.running && 'status' in drained && drained.status.draining).toEqual([
      { source: 'host', reason: HOST_DRAIN_REASON, since: expect.any(String) },
    ]);
    expect(drain.refusal()).toBe(`rbtk-runner is draining: ${HOST_DRAIN_REASON}`);
    // A second drain changes nothing, not even "since".
    const again = await askDaemon(socket, 'drain');
    expect(again.running && 'status' in again && again.status.draining).toEqual(drained.running && 'status' in drained && drained.status.draining);

    const resumed = await askDaemon(socket, 'resume');
    expect(resumed.running && 'status' in resumed && resumed.status.draining).toEqual([]);
    expect(drain.refusal()).toBeUndefined();

    drain.drain('stop', 'rbtk-runner is stopping (SIGTERM)');
    expect(await askDaemon(socket, 'resume')).toEqual({ running: true, refused: 'cannot resume: rbtk-runner is stopping (SIGTERM)' });
    // A host drain never replaces the stop it would weaken.
    await askDaemon(socket, 'drain');
    expect(drain.localDrain).toMatchObject({ source: 'stop' });
  });

  it('waits until no job runs, or says what still runs at the timeout', async () => {
    const busy = await waitForIdle(socket, 150, 20);
    expect(busy).toMatchObject({ idle: false, running: [{ jobId: 'job1', attempt: 1, state: 'running' }] });
    setTimeout(() => (jobs = [{ jobId: 'job1', attempt: 1, state: 'finished' }]), 100);
    expect(await waitForIdle(socket, 5_000, 20)).toMatchObject({ idle: true, status: { jobs: [{ state: 'finished' }] } });
    await close();
    // A daemon that stopped runs nothing.
    expect(await waitForIdle(socket, 1_000, 20)).toEqual({ idle: true, status: null });
    expect(await askDaemon(socket, 'drain')).toEqual({ running: false, reason: 'not running' });
  });
});
