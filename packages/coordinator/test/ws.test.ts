import { connect as netConnect } from 'node:net';
import { PassThrough } from 'node:stream';
import { MAX_WS_FRAME_BYTES, ROUTES } from '@rbtk/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/index.js';
import { eventually, HELLO, sleep, TestCoordinator, TestSocket } from './helpers.js';

describe('runner websocket', () => {
  let tc: TestCoordinator;
  const open: TestSocket[] = [];
  const connect = async (token: string) => {
    const s = await TestSocket.open(tc.wsUrl, token);
    open.push(s);
    return s;
  };

  beforeAll(async () => {
    tc = await TestCoordinator.start({ heartbeatIntervalMs: 5000 });
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.ws.terminate();
  });
  afterAll(async () => {
    await tc.stop();
  });

  it('refuses a protocol mismatch with 426 naming both versions', async () => {
    const { token } = await tc.newRunner('v');
    expect(await TestSocket.refusal(tc.wsUrl, token, { version: '2' })).toEqual({
      status: 426,
      body: { error: { code: 'protocol_mismatch', message: 'coordinator speaks protocol 1, runner speaks protocol 2' } },
    });
    expect(await TestSocket.refusal(tc.wsUrl, token, { version: null })).toEqual({
      status: 426,
      body: {
        error: { code: 'protocol_mismatch', message: 'coordinator speaks protocol 1, runner sent no rbtk-protocol-version header' },
      },
    });
  });

  it('refuses unknown and missing tokens with 401', async () => {
    const unknown = await TestSocket.refusal(tc.wsUrl, `rbtk_run_${'a'.repeat(16)}_${'b'.repeat(43)}`);
    expect(unknown.status).toBe(401);
    expect(unknown.body.error.code).toBe('token_unknown');
    expect((await TestSocket.refusal(tc.wsUrl, null)).status).toBe(401);
    expect((await TestSocket.refusal(tc.wsUrl, tc.adminToken)).body.error.code).toBe('token_unknown');
    const wrongPath = await TestSocket.refusal(tc.wsUrl.replace(ROUTES.runnerSocket, '/v1/elsewhere'), null);
    expect(wrongPath.status).toBe(404);
  });

  it('answers hello with welcome and heartbeats with heartbeat_ack', async () => {
    const reg = await tc.newRunner('hello', 'host-h');
    const s = await connect(reg.token);
    const welcome = await s.hello();
    expect(welcome).toMatchObject({
      type: 'welcome',
      runnerId: reg.runnerId,
      name: 'host-h',
      pool: 'hello',
      project: 'default',
      status: 'ONLINE',
      heartbeatIntervalMs: 5000,
      offlineAfterMs: 60_000,
    });
    expect(Math.abs(Date.parse(welcome.serverTime) - Date.now())).toBeLessThan(5000);
    const ack = await s.heartbeat(7);
    expect(ack).toEqual({ type: 'heartbeat_ack', seq: 7, status: 'ONLINE', heartbeatIntervalMs: 5000 });
    const runner = (await tc.api('GET', ROUTES.runner(reg.runnerId))).body;
    expect(runner).toMatchObject({
      status: 'ONLINE',
      connected: true,
      agentVersion: HELLO.agentVersion,
      host: HELLO.host,
      labels: HELLO.capabilities.labels,
    });
    expect(runner.lastHeartbeatAt).not.toBeNull();
  });

  it('requires hello first', async () => {
    const { token } = await tc.newRunner('order');
    const s = await connect(token);
    s.send({ type: 'heartbeat', seq: 1 });
    expect(await s.expect('error')).toMatchObject({ code: 'hello_required' });
    expect((await s.closed).code).toBe(4400);
  });

  it('refuses a second hello on the same socket with 4400 (it would re-run the job reconciliation)', async () => {
    const { token, runnerId } = await tc.newRunner('twice');
    const s = await connect(token);
    await s.hello();
    s.send(HELLO);
    expect(await s.expect('error')).toEqual({ type: 'error', code: 'malformed_message', message: 'hello twice: a session says hello once' });
    expect((await s.closed).code).toBe(4400);
    // Nothing else changed: a new session says hello as usual.
    const again = await connect(token);
    expect((await again.hello()).runnerId).toBe(runnerId);
  });

  it('answers an upgrade whose request target is not a URL with 400, not 500', async () => {
    for (const target of ['//', '//host:99999/v1/runner/ws']) {
      const sock = netConnect(Number(new URL(tc.url).port), '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      sock.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${'A'.repeat(22)}==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      const answer = await new Promise<string>((resolve) => {
        let text = '';
        sock.on('data', (d: Buffer) => (text += d.toString()));
        sock.on('close', () => resolve(text));
      });
      expect(answer).toMatch(/^HTTP\/1\.1 400 /);
      expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({ error: { code: 'bad_request', message: 'malformed request URL' } });
    }
  });

  it('bad frames get an error and a close code while other runners keep going', async () => {
    const good = await connect((await tc.newRunner('frames', 'good')).token);
    await good.hello();
    let seq = 0;
    const stillAcked = async () => expect((await good.heartbeat(++seq)).seq).toBe(seq);

    const malformed = await connect((await tc.newRunner('frames', 'm')).token);
    malformed.send('{not json');
    expect(await malformed.expect('error')).toMatchObject({ code: 'malformed_message' });
    expect((await malformed.closed).code).toBe(4400);
    await stillAcked();

    const unknown = await connect((await tc.newRunner('frames', 'u')).token);
    await unknown.hello();
    unknown.send({ type: 'launch_missiles' });
    const err = await unknown.expect('error');
    expect(err.code).toBe('unknown_message');
    expect(err.message).toMatch(/launch_missiles/);
    expect((await unknown.closed).code).toBe(4400);
    await stillAcked();

    const invalid = await connect((await tc.newRunner('frames', 'i')).token);
    await invalid.hello();
    invalid.send({ type: 'heartbeat', seq: -1 });
    expect(await invalid.expect('error')).toMatchObject({ code: 'malformed_message' });
    expect((await invalid.closed).code).toBe(4400);

    const big = await connect((await tc.newRunner('frames', 'b')).token);
    await big.hello();
    big.send(JSON.stringify({ type: 'heartbeat', seq: 1, pad: 'x'.repeat(MAX_WS_FRAME_BYTES) }));
    expect((await big.closed).code).toBe(1009);
    await stillAcked();
  });

  it('a new session of the same runner replaces the old one with 4409', async () => {
    const { token, runnerId } = await tc.newRunner('dup');
    const first = await connect(token);
    await first.hello();
    const second = await connect(token);
    expect((await first.closed).code).toBe(4409);
    await second.hello();
    expect((await second.heartbeat(1)).status).toBe('ONLINE');
    expect((await tc.api('GET', ROUTES.runner(runnerId))).body.connected).toBe(true);
  });

  it('revoke closes the live socket with 4401', async () => {
    const { token, runnerId } = await tc.newRunner('rev');
    const s = await connect(token);
    await s.hello();
    expect((await tc.api('POST', ROUTES.runnerRevoke(runnerId))).body).toMatchObject({ id: runnerId, connected: true });
    expect((await s.closed).code).toBe(4401);
    expect((await TestSocket.refusal(tc.wsUrl, token)).body.error.code).toBe('token_revoked');
  });
});

describe('token rotation', () => {
  let tc: TestCoordinator;
  const open: TestSocket[] = [];
  const connect = async (token: string) => {
    const s = await TestSocket.open(tc.wsUrl, token);
    open.push(s);
    return s;
  };

  beforeAll(async () => {
    tc = await TestCoordinator.start({ tokenRotationMs: 0 });
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.ws.terminate();
  });
  afterAll(async () => {
    await tc.stop();
  });

  it('rotates on every heartbeat with tokenRotation 0, one pending at a time, promoted on confirm', async () => {
    const reg = await tc.newRunner('rot');
    const s = await connect(reg.token);
    await s.hello();
    const first = await s.heartbeat(1);
    expect(first.rotatedToken?.token).toMatch(/^rbtk_run_[A-Za-z0-9]{16}_/);
    expect(first.rotatedToken?.token.split('_')[2]).toBe(first.rotatedToken?.id);
    // Not confirmed yet: no second pending in this session.
    expect((await s.heartbeat(2)).rotatedToken).toBeUndefined();
    // The old token still works while the new one is pending (it may not be on disk yet).
    const stillOld = await connect(reg.token);
    expect((await s.closed).code).toBe(4409);
    await stillOld.hello();

    const second = await stillOld.heartbeat(3);
    const rotated = second.rotatedToken!;
    stillOld.send({ type: 'token_confirm', tokenId: rotated.id });
    expect(await stillOld.expect('token_confirmed')).toEqual({ type: 'token_confirmed', tokenId: rotated.id });
    // Confirming the current token again is answered too.
    stillOld.send({ type: 'token_confirm', tokenId: rotated.id });
    await stillOld.expect('token_confirmed');
    stillOld.send({ type: 'token_confirm', tokenId: 'nosuchtoken' });
    expect(await stillOld.expect('error')).toMatchObject({ code: 'token_unknown' });
    // Confirmed: the next heartbeat rotates again.
    expect((await stillOld.heartbeat(4)).rotatedToken).toBeDefined();

    // The new token authenticates.
    const withNew = await connect(rotated.token);
    expect((await stillOld.closed).code).toBe(4409);
    expect((await withNew.hello()).runnerId).toBe(reg.runnerId);
  });

  it('a connection with a pending token promotes it (the confirm was lost)', async () => {
    const reg = await tc.newRunner('lost');
    const s = await connect(reg.token);
    await s.hello();
    const rotated = (await s.heartbeat(1)).rotatedToken!;
    s.ws.terminate(); // crash after writing runner.yaml, before token_confirm
    const again = await connect(rotated.token);
    await again.hello();
    // The original token is now superseded: presenting it is reuse.
    const refusal = await TestSocket.refusal(tc.wsUrl, reg.token);
    expect(refusal).toMatchObject({ status: 401, body: { error: { code: 'token_revoked' } } });
    expect((await again.closed).code).toBe(4401);
  });

  it('reusing a superseded token revokes the runner: 401, audit row, runner gone', async () => {
    const reg = await tc.newRunner('stolen');
    const s = await connect(reg.token);
    await s.hello();
    const rotated = (await s.heartbeat(1)).rotatedToken!;
    s.send({ type: 'token_confirm', tokenId: rotated.id });
    await s.expect('token_confirmed');

    const thief = await TestSocket.refusal(tc.wsUrl, reg.token);
    expect(thief.status).toBe(401);
    expect(thief.body.error.code).toBe('token_revoked');
    expect((await s.closed).code).toBe(4401);
    expect((await tc.api('GET', ROUTES.runner(reg.runnerId))).status).toBe(404);
    const audit = await tc.api('GET', `${ROUTES.audit}?resourceType=runner`);
    const row = audit.body.find((e: { action: string; resourceId: string }) => e.action === 'runner.revoke' && e.resourceId === reg.runnerId);
    expect(row).toMatchObject({ actor: 'system', details: { reason: 'superseded token reused', tokenId: reg.token.split('_')[2] } });
    // The legitimate (current) token is revoked as well.
    expect((await TestSocket.refusal(tc.wsUrl, rotated.token)).body.error.code).toBe('token_revoked');
  });
});

describe('token rotation on an interval', () => {
  it('rotates once the current token is older than tokenRotation, counting from the token last confirmed', async () => {
    const ROTATION_MS = 800;
    const tc = await TestCoordinator.start({ tokenRotationMs: ROTATION_MS });
    try {
      const reg = await tc.newRunner('interval');
      const registeredAt = Date.now();
      const s = await TestSocket.open(tc.wsUrl, reg.token);
      await s.hello();
      expect((await s.heartbeat(1)).rotatedToken).toBeUndefined();
      await new Promise((r) => setTimeout(r, registeredAt + ROTATION_MS + 100 - Date.now()));
      const rotated = (await s.heartbeat(2)).rotatedToken!;
      expect(rotated).toBeDefined();
      s.send({ type: 'token_confirm', tokenId: rotated.id });
      await s.expect('token_confirmed');
      const confirmedAt = Date.now();
      // The new token is young: no rotation until it too is old enough.
      expect((await s.heartbeat(3)).rotatedToken).toBeUndefined();
      await new Promise((r) => setTimeout(r, confirmedAt + ROTATION_MS + 100 - Date.now()));
      expect((await s.heartbeat(4)).rotatedToken).toBeDefined();
      s.ws.terminate();
    } finally {
      await tc.stop();
    }
  });
});

describe('hello timeout', () => {
  it('closes a socket that sends no hello in time with 4408, after an error frame; a prompt hello is kept', async () => {
    const lines: string[] = [];
    const logs = new PassThrough();
    logs.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    const tc = await TestCoordinator.start({ helloTimeoutMs: 300, logger: createLogger({ level: 'warn', destination: logs, pretty: false }) });
    try {
      const silent = await TestSocket.open(tc.wsUrl, (await tc.newRunner('quiet', 'silent')).token);
      const prompt = await TestSocket.open(tc.wsUrl, (await tc.newRunner('quiet', 'prompt')).token);
      await prompt.hello();
      const openedAt = performance.now();
      expect(await silent.expect('error')).toMatchObject({ code: 'hello_required', message: 'no "hello" within 300 ms of the upgrade' });
      expect((await silent.closed).code).toBe(4408);
      expect(performance.now() - openedAt).toBeLessThan(2_000);
      // The one that said hello outlives the timeout.
      await sleep(400);
      expect((await prompt.heartbeat(1)).seq).toBe(1);
      prompt.ws.terminate();
      expect(lines.some((l) => l.includes('runner frame refused') && l.includes('hello_required'))).toBe(true);
    } finally {
      await tc.stop();
    }
  });
});

describe('shutdown', () => {
  it('closes runner sockets with 1001 and stop() is safe to call twice', async () => {
    const tc = await TestCoordinator.start();
    const s = await TestSocket.open(tc.wsUrl, (await tc.newRunner()).token);
    await s.hello();
    const stopping = tc.coordinator.stop();
    expect((await s.closed).code).toBe(1001);
    await stopping;
    await tc.stop();
    await eventually(async () => (await fetch(tc.url).catch(() => 'refused')) === 'refused');
  });
});

describe('dead peers', () => {
  it('terminates a socket that stops answering pings, and keeps live ones', async () => {
    const tc = await TestCoordinator.start({ pingIntervalMs: 100 });
    try {
      const live = await TestSocket.open(tc.wsUrl, (await tc.newRunner('ping', 'live')).token);
      const deadRunner = await tc.newRunner('ping', 'dead');
      const dead = await TestSocket.open(tc.wsUrl, deadRunner.token);
      await live.hello();
      await dead.hello();
      // A paused client reads nothing, so it never answers a ping: like a host that lost power.
      dead.ws.pause();
      await eventually(async () => (await tc.api('GET', ROUTES.runner(deadRunner.runnerId))).body.connected === false, 3000);
      expect((await live.heartbeat(1)).seq).toBe(1);
      live.ws.terminate();
      dead.ws.terminate();
    } finally {
      await tc.stop();
    }
  });
});
