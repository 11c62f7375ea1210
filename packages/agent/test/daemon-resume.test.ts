import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeConfig } from '../src/config/write.js';
import { runDaemon, type DaemonResult } from '../src/daemon.js';
import { CoordinatorPeer } from './helpers/coordinator-peer.js';
import { HOST, memoryLogger, runnerConfig, tempDir } from './helpers/fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/*
 * A SIGCONT (a hosted member thawed for a job) cuts the reconnect backoff
 * short: the next try goes at once. Later tries within the next 5 s still
 * keep 250-500 ms apart, so a coordinator that refuses fast does not get a
 * storm of them.
 */
describe('reconnecting after SIGCONT (runDaemon, a real WebSocket peer)', () => {
  let cleanup: () => Promise<void>;
  let peer: CoordinatorPeer;
  let controller: AbortController;
  let running: Promise<DaemonResult> | undefined;

  beforeEach(() => {
    controller = new AbortController();
  });

  afterEach(async () => {
    controller.abort();
    await running?.catch(() => undefined);
    await peer?.close();
    await cleanup();
  });

  it('tries at once, then keeps a floor between tries while the coordinator refuses', async () => {
    let dir: string;
    ({ dir, cleanup } = await tempDir());
    peer = await CoordinatorPeer.start({ gate: () => ({ status: 503, body: { error: { code: 'unavailable', message: 'busy' } } }) });
    const config = runnerConfig(peer.url);
    const configPath = join(dir, 'runner.yaml');
    await writeConfig(configPath, config);
    // A backoff far longer than the test: every quick try is SIGCONT's doing.
    running = runDaemon(
      { config, configPath, logger: memoryLogger().logger, hostFacts: async () => HOST, agentVersion: '1.0.0', backoff: { baseMs: 60_000, capMs: 60_000, random: () => 0.5 } },
      controller.signal,
    );
    await peer.waitFor('first try', () => peer.upgrades.length === 1);
    await sleep(200);
    expect(peer.upgrades).toHaveLength(1);

    const resumedAt = Date.now();
    process.kill(process.pid, 'SIGCONT');
    await peer.waitFor('the try SIGCONT makes', () => peer.upgrades.length === 2, 1_000);
    expect(Date.now() - resumedAt).toBeLessThan(200);
    await sleep(1_500 - (Date.now() - resumedAt));
    // 1.5 s at 250-500 ms apart (random 0.5: 375 ms): four more at most; it used to be hundreds.
    const tries = peer.upgrades.length - 2;
    expect(tries).toBeGreaterThanOrEqual(2);
    expect(tries).toBeLessThanOrEqual(4);
  });
});
