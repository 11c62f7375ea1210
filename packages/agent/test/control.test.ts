import { stat, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fetchDaemonStatus } from '../src/control/client.js';
import { startControlServer } from '../src/control/server.js';
import { DaemonState } from '../src/daemon-state.js';
import { memoryLogger, runnerConfig, tempDir } from './helpers/fixtures.js';

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
    const server = await startControlServer(socket, { status: () => state.snapshot() }, memoryLogger().logger);
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
    const handlers = { status: () => new DaemonState(runnerConfig('http://x'), '0.1.0').snapshot() };
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

    const server = await startControlServer(socket, { status: () => new DaemonState(runnerConfig('http://x'), '0.1.0').snapshot() }, memoryLogger().logger);
    try {
      expect((await fetchDaemonStatus(socket)).running).toBe(true);
      const res = await new Promise<{ status?: number; body: string }>((resolve) =>
        request({ socketPath: socket, path: '/drain', method: 'POST' }, (r) => {
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
