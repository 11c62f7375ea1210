import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeConfig } from '../src/config/write.js';
import { runDaemon, type DaemonResult } from '../src/daemon.js';
import { DaemonState } from '../src/daemon-state.js';
import { DrainControl } from '../src/drain.js';
import { Wakeup } from '../src/upgrade.js';
import { CoordinatorPeer } from './helpers/coordinator-peer.js';
import { HOST, memoryLogger, runnerConfig, tempDir, type MemoryLog } from './helpers/fixtures.js';

/*
 * The coordinator's minRunnerVersion against what is installed: exit 75 only
 * when a restart would run a version it takes; else stay connected, drained.
 */
describe("the coordinator's minimum runner version (runDaemon, a real WebSocket peer)", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let peer: CoordinatorPeer;
  let controller: AbortController;
  let running: Promise<DaemonResult> | undefined;
  let settled: DaemonResult | 'pending';
  let log: MemoryLog;
  let state: DaemonState;
  let drain: DrainControl;
  let packageJson: string;
  let wakeup: Wakeup;
  let minimum: string | undefined;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    controller = new AbortController();
    log = memoryLogger();
    drain = new DrainControl();
    packageJson = join(dir, 'package.json');
    wakeup = new Wakeup();
    minimum = '2.0.0';
  });

  afterEach(async () => {
    controller.abort();
    await running?.catch(() => undefined);
    running = undefined;
    await peer?.close();
    await cleanup();
  });

  const install = (version: string) => writeFile(packageJson, JSON.stringify({ name: '@rbtk/agent', version }));
  const errors = () => log.lines.filter((l) => l.level === 50);

  async function start(): Promise<void> {
    peer = await CoordinatorPeer.start({
      heartbeatIntervalMs: 30,
      welcomeWith: { minRunnerVersion: minimum },
      ack: () => (minimum ? { minRunnerVersion: minimum } : {}),
    });
    const config = runnerConfig(peer.url);
    const configPath = join(dir, 'runner.yaml');
    await writeConfig(configPath, config);
    state = new DaemonState(config, '1.2.0');
    settled = 'pending';
    running = runDaemon(
      {
        config,
        configPath,
        logger: log.logger,
        state,
        drain,
        hostFacts: async () => HOST,
        agentVersion: '1.2.0',
        backoff: { baseMs: 20, capMs: 100 },
        upgradeWatch: { packageJson, wakeup, intervalMs: 60_000 },
      },
      controller.signal,
    );
    void running.then((r) => (settled = r), () => undefined);
  }

  it('with this same agent installed: stays connected and drained, says so once, exits 75 once a newer one is installed', async () => {
    await install('1.2.0');
    await start();
    await peer.waitFor('drain frame', () => peer.messages('drain')[0]);
    const reason = 'the coordinator requires rbtk-runner 2.0.0 or later; this is 1.2.0 and the installed one is 1.2.0: install rbtk-runner 2.0.0 or later';
    expect(peer.messages('drain')).toEqual([{ type: 'drain', draining: true, reason }]);
    // Every ack repeats the minimum: still one session, one error line, no exit.
    await peer.waitFor('10 heartbeats', () => peer.messages('heartbeat').length >= 10);
    expect(settled).toBe('pending');
    expect(peer.messages('hello')).toHaveLength(1);
    expect(errors()).toEqual([
      expect.objectContaining({
        minimum: '2.0.0',
        running: '1.2.0',
        installed: '1.2.0',
        msg: expect.stringContaining('so a restart would not help: taking no jobs until rbtk-runner 2.0.0 or later is installed'),
      }),
    ]);
    const status = state.snapshot();
    expect(status).toMatchObject({
      connected: true,
      exiting: null,
      upgradeRequired: { minimum: '2.0.0', running: '1.2.0', installed: '1.2.0', since: expect.any(String) },
      draining: [expect.objectContaining({ source: 'upgrade', reason })],
    });
    expect(drain.resume()).toEqual({ ok: false, reason: `cannot resume: ${reason}` });

    // The package is replaced: the upgrade watch (on wakeup here, every minute in service) ends the wait.
    await install('2.1.0');
    wakeup.wake();
    expect(await running).toEqual({ reason: 'upgrade', connections: 1 });
    expect(peer.messages('drain').at(-1)).toEqual({ type: 'drain', draining: true, reason: 'rbtk-runner 2.1.0 is installed; this is 1.2.0' });
  });

  it('with an unreadable package.json: stays drained too (it cannot tell that a restart helps)', async () => {
    await start();
    await peer.waitFor('drain frame', () => peer.messages('drain')[0]);
    expect(peer.messages('drain')[0]).toMatchObject({ reason: expect.stringContaining('and the installed version cannot be read') });
    await peer.waitFor('5 heartbeats', () => peer.messages('heartbeat').length >= 5);
    expect(settled).toBe('pending');
    expect(state.snapshot().upgradeRequired).toMatchObject({ installed: null });
  });

  it('with a newer agent installed that meets the minimum: exits 75 at once', async () => {
    await install('2.0.0');
    await start();
    expect(await running).toEqual({ reason: 'upgrade', connections: 1 });
    expect(peer.messages('drain')[0]).toMatchObject({ reason: 'the coordinator requires rbtk-runner 2.0.0 or later; this is 1.2.0; 2.0.0 is installed' });
    expect(errors()).toEqual([]);
  });

  it('restarts once to take jobs again when the coordinator drops the minimum', async () => {
    await install('1.2.0');
    await start();
    await peer.waitFor('drain frame', () => peer.messages('drain')[0]);
    minimum = undefined;
    expect(await running).toEqual({ reason: 'upgrade', connections: 1 });
    expect(log.lines).toContainEqual(
      expect.objectContaining({ reason: 'the coordinator no longer requires rbtk-runner 2.0.0: restarting to take jobs again' }),
    );
  });
});
