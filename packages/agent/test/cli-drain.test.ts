import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeConfig } from '../src/config/write.js';
import { HOST_DRAIN_REASON } from '../src/drain.js';
import { Daemon, RUNNER_BIN, assertBuilt, runCli, type CliResult } from './helpers/cli.js';
import { CoordinatorPeer } from './helpers/coordinator-peer.js';
import { runnerConfig, tempDir } from './helpers/fixtures.js';

const sh = (script: string) => ({ pool: 'ci', executor: { type: 'shell' as const, command: ['sh', '-c', script] } });

/** `rbtk-runner drain --wait …`, with a hook called once it printed that it drains (its wait has begun). */
async function drainWait(args: string[], onDraining: () => void): Promise<CliResult & { endedAt: number }> {
  const child = spawn(process.execPath, [RUNNER_BIN, 'drain', '--wait', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let told = false;
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (!told && stdout.includes('draining:')) {
      told = true;
      onDraining();
    }
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr, endedAt: Date.now() };
}

describe('rbtk-runner drain against a real daemon', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let peer: CoordinatorPeer;
  let daemons: Daemon[];
  let path: string;

  beforeAll(() => assertBuilt());

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    daemons = [];
    peer = await CoordinatorPeer.start({ heartbeatIntervalMs: 50 });
    path = join(dir, 'runner.yaml');
    await writeConfig(path, runnerConfig(peer.url, { executors: ['shell'], shutdown_timeout: '5s' }));
  });

  afterEach(async () => {
    for (const d of daemons) d.kill('SIGCONT');
    await Promise.all(daemons.map((d) => d.stop()));
    await peer.close();
    await cleanup();
  });

  const start = async () => {
    const d = new Daemon(['run', '--config', path]);
    daemons.push(d);
    const hellos = peer.messages('hello').length;
    await peer.waitFor('hello', () => peer.live && peer.messages('hello').length > hellos, 10_000);
    return d;
  };

  it('--wait does not take a stalled daemon (SIGSTOP, 3 s) for an idle one: it waits for the job', async () => {
    const daemon = await start();
    peer.assign('job-long', sh('echo begin; sleep 4; echo end'));
    await peer.waitFor('started', () => peer.messages('started')[0]);
    const startedAt = Date.now();
    const drained = drainWait(['--config', path, '--timeout', '30s'], () => {
      daemon.kill('SIGSTOP');
      setTimeout(() => daemon.kill('SIGCONT'), 3_000);
    });
    const { code, stdout, stderr, endedAt } = await drained;
    expect(code, stdout + stderr).toBe(0);
    expect(stdout).toContain('idle: no job running');
    // Not before the job's 4 s were up (without the fix: "idle: the daemon has stopped", 2 s into the stall).
    expect(endedAt - startedAt).toBeGreaterThanOrEqual(3_900);
    expect(await peer.waitForResult('job-long')).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect(peer.logText('job-long')).toBe('begin\nend\n');
  });

  it('--wait exits 124 when the daemon stops answering until the timeout, naming what it last ran', async () => {
    const daemon = await start();
    peer.assign('job-long', sh('sleep 30'));
    await peer.waitFor('started', () => peer.messages('started')[0]);
    const { code, stdout, stderr } = await drainWait(['--config', path, '--timeout', '2s'], () => daemon.kill('SIGSTOP'));
    daemon.kill('SIGCONT');
    expect(code, stdout + stderr).toBe(124);
    expect(stdout).not.toContain('idle');
    expect(stderr).toMatch(/^error: cannot tell whether jobs still run: the daemon did not answer until the timeout \(2s\): .*no answer within 2000 ms; when it last answered: job-long#1 \(running\)\n$/);
  });

  it('a host drain outlives kill -9 and restarts: the daemon comes back DRAINING and takes no job until resume', async () => {
    let daemon = await start();
    const drained = await runCli(['drain', '--config', path]);
    expect(drained.code, drained.stderr).toBe(0);
    const file = join(dir, 'state', 'drain.json');
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ reason: HOST_DRAIN_REASON, since: expect.any(String) });

    daemon.kill('SIGKILL');
    await daemon.exited;
    daemon = await start();
    expect(peer.messages('hello')[1]).toMatchObject({ drainReason: HOST_DRAIN_REASON });
    await daemon.waitForLog('still drained on the host: taking no jobs until rbtk-runner resume');
    peer.assign('job-refused', sh('true'));
    await peer.waitFor('reject', () => peer.messages('reject')[0]);
    expect(peer.messages('reject')[0]).toEqual({
      type: 'reject',
      jobId: 'job-refused',
      attempt: 1,
      reason: `rbtk-runner is draining: ${HOST_DRAIN_REASON}`,
      retryable: true,
    });
    const status = JSON.parse((await runCli(['status', '--config', path, '--json'])).stdout) as { daemon: { draining: unknown[] } };
    expect(status.daemon.draining).toEqual([{ source: 'host', reason: HOST_DRAIN_REASON, since: expect.any(String) }]);

    // resume lifts it across a restart too.
    const resumed = await runCli(['resume', '--config', path]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(existsSync(file)).toBe(false);
    await peer.waitFor('resume frame', () => peer.messages('drain').find((d) => !d.draining));
    daemon.kill('SIGKILL');
    await daemon.exited;
    await start();
    expect(peer.messages('hello')[2]).not.toHaveProperty('drainReason');
    peer.assign('job-ok', sh('echo ok'));
    expect(await peer.waitForResult('job-ok')).toMatchObject({ outcome: 'succeeded' });
  });
});
