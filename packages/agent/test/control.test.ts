import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, request, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { askDaemon, fetchDaemonStatus, waitForIdle } from '../src/control/client.js';
import { daemonControlHandlers, HOST_DRAIN_REASON } from '../src/control/handlers.js';
import { startControlServer } from '../src/control/server.js';
import { DaemonState } from '../src/daemon-state.js';
import { DrainControl } from '../src/drain.js';
import { HostDrainFile } from '../src/drain-file.js';
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

describe('drain --wait against a daemon that stalls', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let socket: string;
  let close: (() => Promise<void>) | undefined;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    socket = join(dir, 'control.sock');
  });
  afterEach(async () => {
    await close?.();
    close = undefined;
    await cleanup();
  });

  /** A real HTTP server on the socket path; `answer` decides, per request, what it says and when. */
  async function serve(answer: (res: ServerResponse, n: number) => void): Promise<void> {
    let n = 0;
    const server = createServer((_req, res) => answer(res, n++));
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    close = () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
  }
  const snapshot = (state: string) => {
    const s = new DaemonState(runnerConfig('http://x'), '0.1.0');
    s.trackJobs(() => [{ jobId: 'job1', attempt: 1, state: state as JobStatus['state'] }]);
    return JSON.stringify(s.snapshot());
  };

  it('a socket that accepts and never answers is not idle: retried until the deadline, then said so', async () => {
    await serve(() => undefined);
    const started = Date.now();
    const waited = await waitForIdle(socket, 1_000, 20, 300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(waited).toEqual({ idle: false, status: null, running: [], unreachable: `control socket ${socket}: no answer within 300 ms` });
  });

  it('a stalled poll in the middle is retried: idle only once the job really finished', async () => {
    // Polls 0-1 answer "running", 2 stalls past any poll timeout (an event loop busy for 2.5 s), then "finished".
    await serve((res, n) => {
      if (n === 2) return void setTimeout(() => res.end(snapshot('running')), 2_500).unref();
      res.writeHead(200, { 'content-type': 'application/json' }).end(snapshot(n < 2 ? 'running' : 'finished'));
    });
    const waited = await waitForIdle(socket, 10_000, 20, 300);
    expect(waited).toMatchObject({ idle: true, status: { jobs: [{ jobId: 'job1', state: 'finished' }] } });
  });

  it('an error answer (HTTP 503, not JSON) is not idle either', async () => {
    await serve((res) => res.writeHead(503).end('busy'));
    expect(await waitForIdle(socket, 300, 20, 300)).toMatchObject({ idle: false, unreachable: 'control socket answered HTTP 503' });
  });
});

describe('a host drain kept on disk (drain.json)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let socket: string;
  let drain: DrainControl;
  let close: () => Promise<void>;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    socket = join(dir, 'control.sock');
    drain = new DrainControl();
    const state = new DaemonState(runnerConfig('http://127.0.0.1:7420'), '0.1.0');
    state.trackDrain(drain, () => null);
    close = (await startControlServer(socket, daemonControlHandlers(state, drain, memoryLogger().logger, new HostDrainFile(dir)), memoryLogger().logger)).close;
  });
  afterEach(async () => {
    await close();
    await cleanup();
  });

  it('drain writes it (0640) before answering, resume removes it; a new DrainControl starts from it', async () => {
    await askDaemon(socket, 'drain');
    expect((await stat(join(dir, 'drain.json'))).mode & 0o777).toBe(0o640);
    const kept = await new HostDrainFile(dir).read();
    expect(kept).toEqual({ source: 'host', reason: HOST_DRAIN_REASON, since: drain.localDrain!.since });
    expect(new DrainControl(kept).refusal()).toBe(`rbtk-runner is draining: ${HOST_DRAIN_REASON}`);

    // Under a stop, which outranks it in memory, the host's drain is still kept for the next start.
    await askDaemon(socket, 'resume');
    await expect(stat(join(dir, 'drain.json'))).rejects.toThrow(/ENOENT/);
    drain.drain('stop', 'rbtk-runner is stopping (SIGTERM)');
    await askDaemon(socket, 'drain');
    expect(JSON.parse(await readFile(join(dir, 'drain.json'), 'utf8'))).toMatchObject({ reason: HOST_DRAIN_REASON });
    expect(await askDaemon(socket, 'resume')).toMatchObject({ refused: 'cannot resume: rbtk-runner is stopping (SIGTERM)' });
    expect(await new HostDrainFile(dir).read()).toMatchObject({ reason: HOST_DRAIN_REASON });
  });

  it('says so when the drain cannot be kept on disk, and drains all the same', async () => {
    // A directory where drain.json goes: the rename onto it fails, as a disk error would.
    await mkdir(join(dir, 'drain.json', 'x'), { recursive: true });
    const answer = await askDaemon(socket, 'drain');
    expect(answer).toEqual({ running: true, refused: expect.stringMatching(/^drained, but only until rbtk-runner restarts: cannot write .*drain\.json: /) });
    expect(drain.refusal()).toBe(`rbtk-runner is draining: ${HOST_DRAIN_REASON}`);
  });

  it('an unreadable drain.json still drains: someone asked for it', async () => {
    await writeFile(join(dir, 'drain.json'), '{"reas');
    expect(await new HostDrainFile(dir).read()).toEqual({ source: 'host', reason: HOST_DRAIN_REASON, since: expect.any(String) });
  });
});
