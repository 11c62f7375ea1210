import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunnerConfig } from '@rbtk/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAgent, type AgentOptions } from '../src/agent.js';
import { writeConfig } from '../src/config/write.js';
import { runDaemon, type DaemonDeps, type DaemonResult } from '../src/daemon.js';
import { DaemonState } from '../src/daemon-state.js';
import { DrainControl } from '../src/drain.js';
import { STOPPED_MESSAGE } from '../src/jobs/manager.js';
import { Wakeup } from '../src/upgrade.js';
import { CoordinatorPeer, type PeerOptions } from './helpers/coordinator-peer.js';
import { HOST, memoryLogger, runnerConfig, tempDir, type MemoryLog } from './helpers/fixtures.js';

describe('DrainControl', () => {
  it('ranks a stop over an upgrade over a host drain; only a host drain resumes', () => {
    const drain = new DrainControl();
    const changes: (string | null)[] = [];
    drain.onLocalChange((d) => changes.push(d?.reason ?? null));
    expect(drain.refusal()).toBeUndefined();

    expect(drain.drain('host', 'on the host')).toBe(true);
    expect(drain.drain('host', 'on the host')).toBe(false);
    expect(drain.resume()).toEqual({ ok: true, changed: true });
    expect(drain.resume()).toEqual({ ok: true, changed: false });

    drain.drain('host', 'on the host');
    expect(drain.drain('upgrade', 'v2 installed')).toBe(true);
    expect(drain.drain('host', 'on the host')).toBe(false);
    expect(drain.drain('stop', 'stopping (SIGTERM)')).toBe(true);
    expect(drain.drain('upgrade', 'v3 installed')).toBe(false);
    expect(drain.resume()).toEqual({ ok: false, reason: 'cannot resume: stopping (SIGTERM)' });
    expect(drain.refusal()).toBe('rbtk-runner is draining: stopping (SIGTERM)');
    expect(changes).toEqual(['on the host', null, 'on the host', 'v2 installed', 'stopping (SIGTERM)']);
  });

  it('keeps the coordinator\'s drain apart: it refuses jobs, is listed, and is not reported back', () => {
    const drain = new DrainControl();
    const changes: unknown[] = [];
    drain.onLocalChange((d) => changes.push(d));
    drain.setCoordinatorDrain('pool ci is draining');
    expect(drain.draining).toBe(true);
    expect(drain.refusal()).toBe('rbtk-runner is draining: pool ci is draining');
    drain.drain('host', 'on the host');
    expect(drain.list().map((d) => [d.source, d.reason])).toEqual([
      ['host', 'on the host'],
      ['coordinator', 'pool ci is draining'],
    ]);
    drain.resume();
    expect(drain.draining).toBe(true);
    drain.setCoordinatorDrain(null);
    expect(drain.draining).toBe(false);
    expect(changes).toHaveLength(2);
  });
});

describe('draining against a real WebSocket peer', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let peer: CoordinatorPeer;
  let controller: AbortController;
  let running: Promise<DaemonResult> | undefined;
  let config: RunnerConfig;
  let log: MemoryLog;
  let state: DaemonState;
  let drain: DrainControl;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    controller = new AbortController();
    log = memoryLogger();
    drain = new DrainControl();
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
    const configPath = join(dir, 'runner.yaml');
    await writeConfig(configPath, config);
    state = new DaemonState(config, '1.2.0');
    running = runDaemon(
      { config, configPath, logger: log.logger, state, drain, hostFacts: async () => HOST, agentVersion: '1.2.0', backoff: { baseMs: 20, capMs: 100 }, ...deps },
      controller.signal,
    );
    await peer.waitFor('hello', () => peer.messages('hello').length > 0);
  }

  it('reports its own drain at once, and again in hello after a reconnect; resume too', async () => {
    await start();
    drain.drain('host', 'drained on the host (rbtk-runner drain)');
    await peer.waitFor('drain frame', () => peer.messages('drain')[0]);
    expect(peer.messages('drain')).toEqual([{ type: 'drain', draining: true, reason: 'drained on the host (rbtk-runner drain)' }]);

    peer.closeAll(1001, 'restarting');
    await peer.waitFor('second hello', () => peer.messages('hello')[1]);
    expect(peer.messages('hello')[1]).toMatchObject({ drainReason: 'drained on the host (rbtk-runner drain)' });
    // Already in hello: not sent again.
    await new Promise((r) => setTimeout(r, 100));
    expect(peer.messages('drain')).toHaveLength(1);

    drain.resume();
    await peer.waitFor('resume frame', () => peer.messages('drain')[1]);
    expect(peer.messages('drain')[1]).toEqual({ type: 'drain', draining: false });
    expect(state.snapshot().draining).toEqual([]);
  });

  it("keeps the coordinator's drain until it lifts it, or a new session starts", async () => {
    await start();
    peer.send(peer.live!, { type: 'drain', draining: true, reason: 'pool ci is draining' });
    await peer.waitFor('drained', () => drain.draining);
    expect(state.snapshot().draining).toEqual([{ source: 'coordinator', reason: 'pool ci is draining', since: expect.any(String) }]);
    expect(peer.messages('drain')).toEqual([]);
    peer.closeAll(1001, 'restarting');
    await peer.waitFor('second hello', () => peer.messages('hello')[1]);
    await peer.waitFor('not drained', () => !drain.draining);
    expect(peer.messages('hello')[1]).not.toHaveProperty('drainReason');
  });

  /** A package.json of the installed agent: what a restart would run. */
  const installed = async (version: string) => {
    const packageJson = join(dir, 'package.json');
    await writeFile(packageJson, JSON.stringify({ name: '@rbtk/agent', version }));
    return { upgradeWatch: { packageJson, intervalMs: 60_000 } };
  };

  it("drains and leaves for an upgrade when the coordinator's minimum is newer (welcome) and so is the installed agent", async () => {
    await start({ welcomeWith: { minRunnerVersion: '1.10.0' } }, await installed('1.10.0'));
    expect(await running).toEqual({ reason: 'upgrade', connections: 1 });
    expect(peer.messages('drain')).toEqual([
      { type: 'drain', draining: true, reason: 'the coordinator requires rbtk-runner 1.10.0 or later; this is 1.2.0; 1.10.0 is installed' },
    ]);
    expect(peer.closes[0]).toMatchObject({ code: 1000 });
  });

  it('leaves for an upgrade when a heartbeat_ack raises the minimum, and not for an older one', async () => {
    let minimum = '1.1.9';
    await start({ ack: () => ({ minRunnerVersion: minimum }) }, await installed('2.0.0'));
    await peer.waitFor('3 heartbeats', () => peer.messages('heartbeat').length >= 3);
    expect(drain.draining).toBe(false);
    minimum = '2.0.0-rc.1';
    expect(await running).toEqual({ reason: 'upgrade', connections: 1 });
  });

  it('leaves for an upgrade once a newer version is installed on disk, checked on wakeup', async () => {
    const packageJson = join(dir, 'package.json');
    await writeFile(packageJson, JSON.stringify({ name: '@rbtk/agent', version: '1.2.0' }));
    const wakeup = new Wakeup();
    await start({}, { upgradeWatch: { packageJson, wakeup, intervalMs: 60_000 } });
    wakeup.wake();
    await new Promise((r) => setTimeout(r, 100));
    expect(drain.draining).toBe(false);
    // Mid-write by a package manager: not JSON yet, ignored.
    await writeFile(packageJson, '{"name": "@rbtk/ag');
    wakeup.wake();
    await new Promise((r) => setTimeout(r, 100));
    expect(drain.draining).toBe(false);
    await writeFile(packageJson, JSON.stringify({ name: '@rbtk/agent', version: '1.3.0' }));
    wakeup.wake();
    expect(await running).toEqual({ reason: 'upgrade', connections: 1 });
    expect(peer.messages('drain')[0]).toMatchObject({ reason: 'rbtk-runner 1.3.0 is installed; this is 1.2.0' });
  });
});

describe('jobs while draining (runAgent)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let peer: CoordinatorPeer;
  let graceful: AbortController;
  let forceful: AbortController;
  let running: Promise<DaemonResult> | undefined;
  let log: MemoryLog;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    graceful = new AbortController();
    forceful = new AbortController();
    log = memoryLogger();
  });

  afterEach(async () => {
    forceful.abort();
    graceful.abort();
    await running?.catch(() => undefined);
    running = undefined;
    await peer?.close();
    await cleanup();
  });

  async function start(peerOptions: PeerOptions = {}, options: Partial<AgentOptions> = {}, overrides: Partial<RunnerConfig> = {}) {
    peer = await CoordinatorPeer.start({ heartbeatIntervalMs: 50, ...peerOptions });
    const config = runnerConfig(peer.url, { runner_id: `runner${randomBytes(5).toString('hex')}`, executors: ['shell'], ...overrides });
    const configPath = join(dir, 'runner.yaml');
    await writeConfig(configPath, config);
    running = runAgent(
      {
        config,
        configPath,
        logger: log.logger,
        env: {},
        hostFacts: async () => HOST,
        agentVersion: '1.2.0',
        backoff: { baseMs: 20, capMs: 100 },
        executorOptions: { shellGraceMs: 500 },
        forceStop: forceful.signal,
        upgradeWatch: { packageJson: join(dir, 'none.json') },
        ...options,
      },
      graceful.signal,
    );
    await peer.waitFor('hello', () => peer.live && peer.messages('hello').length > 0);
  }

  const sh = (script: string) => ({ pool: 'ci', executor: { type: 'shell' as const, command: ['sh', '-c', script] } });

  it('rejects assignments while the coordinator drains it, takes them again once lifted', async () => {
    await start();
    peer.send(peer.live!, { type: 'drain', draining: true, reason: 'drained by an operator (rbtk runner drain)' });
    peer.assign('job-refused', sh('true'));
    await peer.waitFor('reject', () => peer.messages('reject')[0]);
    expect(peer.messages('reject')[0]).toEqual({
      type: 'reject',
      jobId: 'job-refused',
      attempt: 1,
      reason: 'rbtk-runner is draining: drained by an operator (rbtk runner drain)',
      retryable: true,
    });
    peer.send(peer.live!, { type: 'drain', draining: false });
    peer.assign('job-ok', sh('echo ok'));
    expect(await peer.waitForResult('job-ok')).toMatchObject({ outcome: 'succeeded' });
  });

  it('an upgrade waits for the running job, however long shutdown_timeout is, then leaves', async () => {
    const packageJson = join(dir, 'package.json');
    await writeFile(packageJson, JSON.stringify({ name: '@rbtk/agent', version: '1.3.0' }));
    await start({}, { upgradeWatch: { packageJson, intervalMs: 60_000 } }, { shutdown_timeout: '100ms' });
    peer.assign('job-long', sh('sleep 0.6; echo finished'));
    await peer.waitFor('started', () => peer.messages('started')[0]);
    peer.options.ack = () => ({ minRunnerVersion: '1.3.0' });
    await peer.waitFor('drain frame', () => peer.messages('drain')[0]);
    peer.assign('job-late', sh('true'));
    expect(await running).toEqual({ reason: 'upgrade', connections: 1 });
    expect(peer.results('job-long')).toEqual([expect.objectContaining({ outcome: 'succeeded', exitCode: 0 })]);
    expect(peer.messages('reject')).toEqual([expect.objectContaining({ jobId: 'job-late', reason: expect.stringMatching(/^rbtk-runner is draining: the coordinator requires/) })]);
  });

  it('a stop lets the job run; the force stop cancels it with the reason; a late upgrade is still a stop', async () => {
    await start();
    peer.assign('job-stuck', sh('echo working; exec sleep 30'));
    await peer.waitFor('started', () => peer.messages('started')[0]);
    graceful.abort('SIGTERM');
    await peer.waitFor('drain frame', () => peer.messages('drain')[0]);
    expect(peer.messages('drain')[0]).toEqual({ type: 'drain', draining: true, reason: 'rbtk-runner is stopping (SIGTERM)' });
    peer.options.ack = () => ({ minRunnerVersion: '9.0.0' });
    await new Promise((r) => setTimeout(r, 200));
    expect(peer.results('job-stuck')).toEqual([]);
    forceful.abort('a second SIGTERM asked it to stop at once');
    expect(await running).toEqual({ reason: 'stopped', connections: 1 });
    expect(peer.results('job-stuck')).toEqual([
      expect.objectContaining({ outcome: 'cancelled', exitCode: 143, message: `${STOPPED_MESSAGE}: a second SIGTERM asked it to stop at once` }),
    ]);
    expect(peer.messages('drain')).toHaveLength(1);
  });
});
