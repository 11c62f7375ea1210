import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach } from 'vitest';
import { writeConfig } from '../../src/config/write.js';
import { Daemon, assertBuilt } from './cli.js';
import { CoordinatorPeer } from './coordinator-peer.js';
import { runnerConfig, tempDir } from './fixtures.js';

export interface DaemonFixture {
  /** The test's temp directory: runner.yaml, and the daemon's state/ beside it. */
  dir: string;
  /** runner.yaml (shell executor, shutdown_timeout 5s) pointing at `peer`. */
  path: string;
  peer: CoordinatorPeer;
  /** A real `rbtk-runner run` on `path`, stopped after the test. */
  start(env?: NodeJS.ProcessEnv): Daemon;
}

/**
 * Real daemons against a CoordinatorPeer, fresh for each test of the describe
 * block it is called in. After each test its daemons are resumed (a test may
 * have SIGSTOPped one) and stopped, and the peer and the directory go.
 */
export function daemonFixture(): DaemonFixture {
  let cleanup: () => Promise<void> = async () => {};
  let daemons: Daemon[] = [];
  const fx: DaemonFixture = {
    dir: '',
    path: '',
    peer: undefined as unknown as CoordinatorPeer,
    start(env = {}) {
      const d = new Daemon(['run', '--config', fx.path], env);
      daemons.push(d);
      return d;
    },
  };

  beforeAll(() => assertBuilt());

  beforeEach(async () => {
    ({ dir: fx.dir, cleanup } = await tempDir());
    daemons = [];
    fx.peer = await CoordinatorPeer.start({ heartbeatIntervalMs: 50 });
    fx.path = join(fx.dir, 'runner.yaml');
    await writeConfig(fx.path, runnerConfig(fx.peer.url, { executors: ['shell'], shutdown_timeout: '5s' }));
  });

  afterEach(async () => {
    for (const d of daemons) d.kill('SIGCONT');
    await Promise.all(daemons.map((d) => d.stop()));
    await fx.peer.close();
    await cleanup();
  });

  return fx;
}
