import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunnerConfig } from '@rbtk/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeConfig } from '../src/config/write.js';
import { loadConfig } from '../src/config/load.js';
import { runDaemon, type DaemonDeps, type DaemonResult } from '../src/daemon.js';
import { DaemonState } from '../src/daemon-state.js';
import { RevokedError } from '../src/errors.js';
import { CoordinatorPeer, type PeerOptions } from './helpers/coordinator-peer.js';
import { HOST, memoryLogger, runnerConfig, runnerToken, tempDir, type MemoryLog } from './helpers/fixtures.js';

describe('runDaemon against a real WebSocket peer', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let peer: CoordinatorPeer;
  let controller: AbortController;
  let running: Promise<DaemonResult> | undefined;
  let config: RunnerConfig;
  let configPath: string;
  let log: MemoryLog;
  let state: DaemonState;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    configPath = join(dir, 'runner.yaml');
    controller = new AbortController();
    log = memoryLogger();
  });

  afterEach(async () => {
    controller.abort();
    await running?.catch(() => undefined);
    running = undefined;
    await peer?.close();
    await cleanup();
  });

  async function start(peerOptions: PeerOptions = {}, deps: Partial<DaemonDeps> = {}): Promise<void> {
    peer = await CoordinatorPeer.start({ heartbeatIntervalMs: 30, ...peerOptions });
    config = runnerConfig(peer.url);
    await writeConfig(configPath, config);
    state = new DaemonState(config, '0.1.0');
    running = runDaemon(
      {
        config,
        configPath,
        logger: log.logger,
        state,
        hostFacts: async () => HOST,
        agentVersion: '0.1.0',
        backoff: { baseMs: 20, capMs: 100 },
        ...deps,
      },
      controller.signal,
    );
  }

  const bearer = (i: number) => peer.upgrades[i]?.authorization?.replace('Bearer ', '');
  const logged = (msg: string) => log.lines.filter((l) => l.msg === msg);

  it('says hello with host facts and capabilities, logs "connected", and heartbeats with rising seq', async () => {
    await start();
    await peer.waitFor('5 heartbeats', () => peer.messages('heartbeat').length >= 5);
    expect(peer.messages('hello')).toEqual([
      {
        type: 'hello',
        agentVersion: '0.1.0',
        host: HOST,
        capabilities: { executors: ['docker'], maxJobs: 2, labels: { arch: 'x64' }, airgapped: false },
        held: [],
      },
    ]);
    expect(peer.messages('heartbeat').slice(0, 5).map((h) => h.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(logged('connected')[0]).toMatchObject({
      level: 30,
      url: peer.url,
      runnerId: 'runner0000000001',
      name: 'host-a',
      pool: 'ci',
      project: 'default',
      status: 'ONLINE',
      heartbeatIntervalMs: 30,
    });
    const snap = state.snapshot();
    expect(snap).toMatchObject({ connected: true, runnerId: 'runner0000000001', pool: 'ci', status: 'ONLINE' });
    expect(snap.heartbeatsSent).toBeGreaterThanOrEqual(5);
    expect(snap.lastHeartbeatAt).not.toBeNull();

    controller.abort();
    expect(await running).toEqual({ reason: 'stopped', connections: 1 });
    await peer.waitFor('close', () => peer.closes[0]);
    expect(peer.closes[0]).toMatchObject({ code: 1000, reason: 'runner stopping' });
    expect(state.snapshot().connected).toBe(false);
    expect(log.text()).not.toContain(config.token);
  });

  it('writes a rotated token to runner.yaml before token_confirm reaches the coordinator', async () => {
    const rotated = runnerToken();
    const onDiskAtConfirm: string[] = [];
    await start({
      ack: (seq) => (seq === 1 ? { rotatedToken: rotated } : {}),
      onMessage: (m) => {
        // Read the file the instant the confirm arrives: it must already hold the new token.
        if (m.type === 'token_confirm') onDiskAtConfirm.push(readFileSync(configPath, 'utf8'));
      },
    });
    const confirm = await peer.waitFor('token_confirm', () => peer.messages('token_confirm')[0]);
    expect(confirm.tokenId).toBe(rotated.id);
    expect(onDiskAtConfirm).toHaveLength(1);
    expect(onDiskAtConfirm[0]).toContain(`token: ${rotated.token}`);
    expect((await loadConfig(configPath)).token).toBe(rotated.token);
    await peer.waitFor('rotation counted', () => state.snapshot().rotations === 1);
    expect(logged('token rotated')[0]).toMatchObject({ tokenId: rotated.id, confirmSent: true });
    expect(log.text()).not.toContain(rotated.token);

    // The next connection authenticates with the new token.
    peer.closeAll(1001, 'coordinator shutting down');
    await peer.waitFor('second upgrade', () => peer.upgrades[1]);
    expect(bearer(0)).toBe(config.token);
    expect(bearer(1)).toBe(rotated.token);
  });

  it('keeps the old token and sends no confirm when the rotated token cannot be saved', async () => {
    const rotated = runnerToken();
    await start(
      { ack: (seq, conn) => (conn === 0 && seq === 0 ? { rotatedToken: rotated } : {}) },
      {
        writeConfig: async () => {
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        },
      },
    );
    await peer.waitFor('warning', () => logged('could not save the rotated token; keeping the old one')[0]);
    await peer.waitFor('more heartbeats', () => peer.messages('heartbeat').length >= 3);
    expect(peer.messages('token_confirm')).toEqual([]);
    expect(logged('could not save the rotated token; keeping the old one')[0]).toMatchObject({
      level: 40,
      tokenId: rotated.id,
      err: 'ENOSPC: no space left on device, write',
    });
    expect((await loadConfig(configPath)).token).toBe(config.token);
    peer.closeAll(1001);
    await peer.waitFor('second upgrade', () => peer.upgrades[1]);
    expect(bearer(1)).toBe(config.token);
  });

  it('a reconnect waits for an in-flight rotation write, then uses the new token', async () => {
    const rotated = runnerToken();
    let writes = 0;
    await start(
      {
        ack: (seq, conn) => (conn === 0 && seq === 0 ? { rotatedToken: rotated } : {}),
        // Drop the connection right after handing out the token: the write is still in flight.
        onMessage: (m, ws) => {
          if (m.type === 'heartbeat' && m.seq === 0) ws.close(1001);
        },
      },
      {
        backoff: { baseMs: 1, capMs: 1 },
        writeConfig: async (path, cfg) => {
          writes++;
          await new Promise((r) => setTimeout(r, 300));
          await writeConfig(path, cfg);
        },
      },
    );
    await peer.waitFor('second upgrade', () => peer.upgrades[1], 5_000);
    expect(writes).toBe(1);
    expect(bearer(1)).toBe(rotated.token);
    expect((await loadConfig(configPath)).token).toBe(rotated.token);
  });

  it('reconnects with growing backoff after the server closes or refuses, logging each attempt', async () => {
    await start(
      {
        gate: (_u, i) => (i >= 1 && i <= 3 ? { status: 503, body: { error: { code: 'unavailable', message: 'busy' } } } : undefined),
      },
      { backoff: { baseMs: 20, capMs: 1_000, random: () => 0.99 } },
    );
    await peer.waitFor('first session', () => peer.messages('hello').length === 1);
    peer.closeAll(1001, 'restart');
    await peer.waitFor('second connection', () => logged('connected').length === 2, 5_000);
    expect(peer.upgrades).toHaveLength(5);
    const attempts = logged('reconnecting');
    expect(attempts.map((a) => [a.attempt, a.delayMs])).toEqual([
      [1, 19],
      [2, 39],
      [3, 79],
      [4, 158],
    ]);
    expect(attempts[0]!.reason).toBe('closed with code 1001: restart');
    expect(attempts[1]!.reason).toBe('coordinator refused the connection: HTTP 503: busy');
    expect(logged('disconnected')[0]).toMatchObject({ level: 40, code: 1001, reason: 'restart' });
    expect(logged('connected')).toHaveLength(2);
    expect(state.snapshot()).toMatchObject({ connected: true, reconnects: 4 });
  });

  it('stops with RevokedError when the coordinator closes with 4401', async () => {
    await start();
    await peer.waitFor('a heartbeat', () => peer.messages('heartbeat')[0]);
    peer.closeAll(4401, 'runner revoked');
    const err = await running!.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevokedError);
    expect((err as Error).message).toBe('runner revoked');
    expect(peer.upgrades).toHaveLength(1);
  });

  it('stops with RevokedError when a reconnect gets 401', async () => {
    await start({
      gate: (_u, i) => (i > 0 ? { status: 401, body: { error: { code: 'token_unknown', message: 'runner token is unknown' } } } : undefined),
    });
    await peer.waitFor('a heartbeat', () => peer.messages('heartbeat')[0]);
    peer.closeAll(1001);
    const err = await running!.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevokedError);
    expect((err as RevokedError).reason).toBe('token_unknown');
  });

  it('logs a replaced session (4409) and keeps reconnecting', async () => {
    await start();
    await peer.waitFor('a heartbeat', () => peer.messages('heartbeat')[0]);
    peer.closeAll(4409, 'replaced by a newer session');
    await peer.waitFor('second hello', () => peer.messages('hello').length === 2);
    expect(logged('another session for this runner replaced this one; is a second rbtk-runner using this runner.yaml?')[0]).toMatchObject({
      level: 40,
      code: 4409,
    });
  });

  it('drops a connection whose coordinator stopped answering heartbeats', async () => {
    await start({ ackHeartbeats: false, offlineAfterMs: 200 });
    await peer.waitFor('second hello', () => peer.messages('hello').length === 2, 5_000);
    expect(logged('coordinator stopped answering heartbeats; dropping the connection')).toHaveLength(1);
    expect(logged('reconnecting')[0]).toMatchObject({ reason: 'coordinator stopped answering heartbeats' });
  });
});
