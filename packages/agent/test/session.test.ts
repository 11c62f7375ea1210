import { createServer } from 'node:net';
import { PROTOCOL_VERSION } from '@rbtk/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionError, ProtocolMismatchError, RevokedError } from '../src/errors.js';
import { openSession, type SessionOptions } from '../src/session.js';
import { CoordinatorPeer } from './helpers/coordinator-peer.js';
import { HOST, memoryLogger, runnerToken } from './helpers/fixtures.js';

const hello: SessionOptions['hello'] = {
  agentVersion: '0.1.0',
  host: HOST,
  capabilities: { executors: ['docker', 'shell'], maxJobs: 2, labels: { gpu: 'a100' }, airgapped: true },
  held: [],
};

describe('openSession', () => {
  let peer: CoordinatorPeer | undefined;
  afterEach(async () => {
    await peer?.close();
    peer = undefined;
  });

  const open = (p: CoordinatorPeer, token = runnerToken().token, extra: Partial<SessionOptions> = {}) =>
    openSession({ url: p.url, token, hello, logger: memoryLogger().logger, handshakeTimeoutMs: 3_000, ...extra });

  it('upgrades with Bearer token and protocol version, sends hello with host facts, gets welcome', async () => {
    peer = await CoordinatorPeer.start();
    const { token } = runnerToken();
    const session = await open(peer, token);
    expect(peer.upgrades).toEqual([{ path: '/v1/runner/ws', authorization: `Bearer ${token}`, protocolVersion: String(PROTOCOL_VERSION) }]);
    expect(peer.messages('hello')).toEqual([{ type: 'hello', ...hello }]);
    expect(session.welcome).toMatchObject({ type: 'welcome', runnerId: 'runner0000000001', pool: 'ci', heartbeatIntervalMs: 50 });
    const closed = await session.close(1000, 'done');
    expect(closed.code).toBe(1000);
    await peer.waitFor('close at peer', () => peer!.closes[0]);
    expect(peer.closes[0]).toMatchObject({ code: 1000, reason: 'done' });
  });

  it('keeps the base URL path prefix', async () => {
    peer = await CoordinatorPeer.start();
    const session = await open(peer, undefined, { url: `${peer.url}/prefix/` });
    expect(peer.upgrades[0]!.path).toBe('/prefix/v1/runner/ws');
    await session.close();
  });

  it('401 at the upgrade is a RevokedError with the coordinator message', async () => {
    peer = await CoordinatorPeer.start({
      gate: () => ({ status: 401, body: { error: { code: 'token_revoked', message: 'this runner was revoked' } } }),
    });
    const err = (await open(peer).catch((e: unknown) => e)) as RevokedError;
    expect(err).toBeInstanceOf(RevokedError);
    expect(err.message).toBe('this runner was revoked');
    expect(err.reason).toBe('token_revoked');
  });

  it('426 at the upgrade is a ProtocolMismatchError that says both versions', async () => {
    const message = 'coordinator speaks protocol 2, runner speaks protocol 1';
    peer = await CoordinatorPeer.start({ gate: () => ({ status: 426, body: { error: { code: 'protocol_mismatch', message } } }) });
    const err = await open(peer).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolMismatchError);
    expect((err as Error).message).toBe(message);
  });

  it('any other refusal is retryable', async () => {
    peer = await CoordinatorPeer.start({ gate: () => ({ status: 503, body: { error: { code: 'unavailable', message: 'starting up' } } }) });
    const err = await open(peer).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toBe('coordinator refused the connection: HTTP 503: starting up');
  });

  it('close 4401 before the welcome is a RevokedError', async () => {
    peer = await CoordinatorPeer.start({ welcome: false, onMessage: (_m, ws) => ws.close(4401, 'runner revoked') });
    const err = await open(peer).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevokedError);
    expect((err as Error).message).toBe('runner revoked');
  });

  it('another close before the welcome is retryable and names the error frame', async () => {
    peer = await CoordinatorPeer.start({
      welcome: false,
      onMessage: (_m, ws, p) => {
        p.send(ws, { type: 'error', code: 'hello_required', message: 'send hello first' });
        ws.close(4400);
      },
    });
    const err = await open(peer).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toMatch(/code 4400: hello_required: send hello first/);
  });

  it('a peer that never welcomes times out; nothing listening is retryable', async () => {
    peer = await CoordinatorPeer.start({ welcome: false });
    await expect(open(peer, undefined, { handshakeTimeoutMs: 200 })).rejects.toThrow(/no welcome .* within 200 ms/);

    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const { port } = probe.address() as { port: number };
    await new Promise((r) => probe.close(r));
    const err = await openSession({ url: `http://127.0.0.1:${port}`, token: 't', hello, logger: memoryLogger().logger }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });

  it('stops at once when its signal aborts', async () => {
    peer = await CoordinatorPeer.start({ welcome: false });
    const controller = new AbortController();
    const pending = open(peer, undefined, { signal: controller.signal });
    await peer.waitFor('hello', () => peer!.messages('hello')[0]);
    controller.abort();
    await expect(pending).rejects.toThrow(/aborted/);
  });

  it('delivers frames after the welcome, and drops invalid ones with a warning', async () => {
    peer = await CoordinatorPeer.start();
    const log = memoryLogger();
    const session = await open(peer, undefined, { logger: log.logger });
    const ws = peer.sockets[0]!;
    ws.send('not json');
    peer.send(ws, { type: 'token_confirmed', tokenId: 'abc' });
    const got: string[] = [];
    await new Promise<void>((resolve) =>
      session.onMessage((m) => {
        got.push(m.type);
        resolve();
      }),
    );
    expect(got).toEqual(['token_confirmed']);
    expect(log.lines).toContainEqual(expect.objectContaining({ msg: 'ignoring an invalid frame from the coordinator' }));
    await session.close();
  });
});
