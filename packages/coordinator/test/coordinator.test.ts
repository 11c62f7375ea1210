import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { parseToken, ROUTES } from '@rbtk/protocol';
import { describe, expect, it } from 'vitest';
import { createLogger, startCoordinator } from '../src/index.js';
import { capturedLogger, eventually, TestSocket, tempDir } from './helpers.js';


const count = (kind: string) => process.getActiveResourcesInfo().filter((r) => r === kind).length;

describe('startCoordinator', () => {
  it('bootstraps once: default project, admin token file 0600, path logged, never the token', async () => {
    const dir = tempDir();
    try {
      const { logger, lines } = capturedLogger();
      const c = await startCoordinator({ dataDir: dir.dir, port: 0, logger });
      const file = path.join(dir.dir, 'admin.token');
      expect(c.adminTokenFile).toBe(file);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const token = readFileSync(file, 'utf8').trim();
      expect(token).toMatch(/^rbtk_api_[A-Za-z0-9]{16}_[A-Za-z0-9_-]{43}$/);
      expect(c.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const listening = lines.find((l) => l.msg === 'listening');
      expect(listening).toMatchObject({ url: c.url });
      expect(lines.find((l) => l.msg === 'instance admin token written')).toMatchObject({ path: file });

      const res = await fetch(c.url + ROUTES.projects, { headers: { authorization: `Bearer ${token}` } });
      expect(((await res.json()) as { name: string }[]).map((p) => p.name)).toEqual(['default']);
      // Requests log the method and path, never the authorization header.
      await c.stop();
      expect(JSON.stringify(lines)).not.toContain(parseToken(token)!.secret);

      // Second start: same token, no new file.
      const again = await startCoordinator({ dataDir: dir.dir, port: 0, logger: createLogger({ level: 'silent' }) });
      expect(readFileSync(file, 'utf8').trim()).toBe(token);
      const ok = await fetch(again.url + ROUTES.pools, { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      await again.stop();
    } finally {
      dir.cleanup();
    }
  });

  it('stop() leaves no server, loop timer or socket behind, and is safe to call twice', async () => {
    const dir = tempDir();
    await new Promise((r) => setTimeout(r, 50)); // let handles closed by earlier tests go
    const timeouts = count('Timeout');
    const servers = count('TCPServerWrap');
    // stop() lands while the first hosted reconcile pass is still reading the store: it must not then sleep out the hour.
    const c = await startCoordinator({ dataDir: dir.dir, port: 0, offlineAfterMs: 200, hostedReconcileIntervalMs: 3_600_000, logger: createLogger({ level: 'silent' }) });
    expect(count('TCPServerWrap')).toBe(servers + 1);
    await Promise.all([c.stop(), c.stop()]);
    await c.stop();
    // libuv frees closed handles on its next turn.
    await eventually(async () => count('TCPServerWrap') === servers && count('Timeout') <= timeouts, 2000);
    dir.cleanup();
  }, 15_000);

  it('fails to start on a taken port and releases the database', async () => {
    const dir = tempDir();
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      await expect(startCoordinator({ dataDir: dir.dir, port, logger: createLogger({ level: 'silent' }) })).rejects.toThrow(/EADDRINUSE/);
      // The same data dir starts fine elsewhere (the store was closed).
      const c = await startCoordinator({ dataDir: dir.dir, port: 0, logger: createLogger({ level: 'silent' }) });
      await c.stop();
    } finally {
      blocker.close();
      dir.cleanup();
    }
  });

  it('rejects bad timings', async () => {
    const dir = tempDir();
    await expect(startCoordinator({ dataDir: dir.dir, port: 0, offlineAfterMs: 0 })).rejects.toThrow(/offlineAfterMs/);
    dir.cleanup();
  });

  it('rejects bad limits', async () => {
    const dir = tempDir();
    await expect(startCoordinator({ dataDir: dir.dir, port: 0, maxLogBytes: -1 })).rejects.toThrow(/maxLogBytes must be a whole number >= 0/);
    await expect(startCoordinator({ dataDir: dir.dir, port: 0, maxLogBytes: 1.5 })).rejects.toThrow(/maxLogBytes/);
    await expect(startCoordinator({ dataDir: dir.dir, port: 0, helloTimeoutMs: 0 })).rejects.toThrow(/helloTimeoutMs/);
    dir.cleanup();
  });

  it('keeps serving other runners when one socket misbehaves at the TCP level', async () => {
    const dir = tempDir();
    const c = await startCoordinator({ dataDir: dir.dir, port: 0, logger: createLogger({ level: 'silent' }) });
    try {
      // Half an upgrade request, then a reset.
      const { connect } = await import('node:net');
      const u = new URL(c.url);
      const sock = connect(Number(u.port), u.hostname);
      await new Promise((r) => sock.once('connect', r));
      sock.write(`GET ${ROUTES.runnerSocket} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`);
      sock.resetAndDestroy();
      const refusal = await TestSocket.refusal(c.url.replace('http', 'ws') + ROUTES.runnerSocket, null);
      expect(refusal.status).toBe(401);
    } finally {
      await c.stop();
      dir.cleanup();
    }
  });
});

describe('HTTP connections', () => {
  const rawConnect = async (url: string) => {
    const { connect } = await import('node:net');
    const sock = connect(Number(new URL(url).port), '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    return sock;
  };

  it('a client that goes away mid-body is a debug line, not a 500 with a stack', async () => {
    const dir = tempDir();
    const { logger, lines } = capturedLogger();
    const c = await startCoordinator({ dataDir: dir.dir, port: 0, logger });
    try {
      const admin = readFileSync(c.adminTokenFile, 'utf8').trim();
      const sock = await rawConnect(c.url);
      sock.write(
        `POST ${ROUTES.jobs} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"pool":`,
      );
      // Let the handler start reading the body, then leave.
      await new Promise((r) => setTimeout(r, 200));
      sock.destroy();
      await eventually(async () => lines.some((l) => l.msg === 'client went away before its request was read'));
      expect((await fetch(c.url + ROUTES.health)).status).toBe(200);
      const loud = lines.filter((l) => (l.level as number) >= 40);
      expect(loud).toEqual([]);
    } finally {
      await c.stop();
      dir.cleanup();
    }
  });

  it('cuts a request whose headers dribble in (408), and leaves upgraded WebSockets alone', async () => {
    const dir = tempDir();
    const c = await startCoordinator({ dataDir: dir.dir, port: 0, httpRequestTimeoutMs: 300, logger: createLogger({ level: 'silent' }) });
    try {
      const admin = readFileSync(c.adminTokenFile, 'utf8').trim();
      const wsUrl = c.url.replace('http', 'ws') + ROUTES.runnerSocket;
      const api = (method: string, route: string, body?: unknown) =>
        fetch(c.url + route, { method, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect((await api('POST', ROUTES.pools, { name: 'long' })).status).toBe(201);
      const reg = (await (await api('POST', ROUTES.poolTokens('long'), { ttl: '1h' })).json()) as { token: string };
      const res = await fetch(c.url + ROUTES.register, {
        method: 'POST',
        headers: { authorization: `Bearer ${reg.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'long-lived' }),
      });
      const runner = (await res.json()) as { token: string };
      const s = await TestSocket.open(wsUrl, runner.token);
      await s.hello();

      const slow = await rawConnect(c.url);
      const startedAt = performance.now();
      slow.write(`GET ${ROUTES.health} HTTP/1.1\r\nHost: x\r\n`); // and never the blank line
      const answer = await new Promise<string>((resolve) => {
        let text = '';
        slow.on('data', (d: Buffer) => (text += d.toString()));
        slow.on('close', () => resolve(text));
      });
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(answer).toMatch(/"message":"the request did not arrive in time"/);
      expect(performance.now() - startedAt).toBeLessThan(3_000);

      // Well past the request timeout, the runner socket is still up.
      await new Promise((r) => setTimeout(r, 900));
      expect((await s.heartbeat(1)).seq).toBe(1);
      s.ws.terminate();
    } finally {
      await c.stop();
      dir.cleanup();
    }
  });
});
