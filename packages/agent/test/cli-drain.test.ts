import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HOST_DRAIN_REASON } from '../src/drain.js';
import { RUNNER_BIN, runCli, type CliResult } from './helpers/cli.js';
import { daemonFixture } from './helpers/daemon-fixture.js';

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
  const fx = daemonFixture();

  const start = async () => {
    const d = fx.start();
    const hellos = fx.peer.messages('hello').length;
    await fx.peer.waitFor('hello', () => fx.peer.live && fx.peer.messages('hello').length > hellos, 10_000);
    return d;
  };

  it('--wait does not take a stalled daemon (SIGSTOP, 3 s) for an idle one: it waits for the job', async () => {
    const daemon = await start();
    fx.peer.assign('job-long', sh('echo begin; sleep 4; echo end'));
    await fx.peer.waitFor('started', () => fx.peer.messages('started')[0]);
    const startedAt = Date.now();
    const drained = drainWait(['--config', fx.path, '--timeout', '30s'], () => {
      daemon.kill('SIGSTOP');
      setTimeout(() => daemon.kill('SIGCONT'), 3_000);
    });
    const { code, stdout, stderr, endedAt } = await drained;
    expect(code, stdout + stderr).toBe(0);
    expect(stdout).toContain('idle: no job running');
    // Not before the job's 4 s were up (without the fix: "idle: the daemon has stopped", 2 s into the stall).
    expect(endedAt - startedAt).toBeGreaterThanOrEqual(3_900);
    expect(await fx.peer.waitForResult('job-long')).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect(fx.peer.logText('job-long')).toBe('begin\nend\n');
  });

  it('--wait exits 124 when the daemon stops answering until the timeout, naming what it last ran', async () => {
    const daemon = await start();
    fx.peer.assign('job-long', sh('sleep 30'));
    await fx.peer.waitFor('started', () => fx.peer.messages('started')[0]);
    const { code, stdout, stderr } = await drainWait(['--config', fx.path, '--timeout', '2s'], () => daemon.kill('SIGSTOP'));
    daemon.kill('SIGCONT');
    expect(code, stdout + stderr).toBe(124);
    expect(stdout).not.toContain('idle');
    expect(stderr).toMatch(/^error: cannot tell whether jobs still run: the daemon did not answer until the timeout \(2s\): .*no answer within 2000 ms; when it last answered: job-long#1 \(running\)\n$/);
  });

  it('a host drain outlives kill -9 and restarts: the daemon comes back DRAINING and takes no job until resume', async () => {
    let daemon = await start();
    const drained = await runCli(['drain', '--config', fx.path]);
    expect(drained.code, drained.stderr).toBe(0);
    const file = join(fx.dir, 'state', 'drain.json');
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ reason: HOST_DRAIN_REASON, since: expect.any(String) });

    daemon.kill('SIGKILL');
    await daemon.exited;
    daemon = await start();
    expect(fx.peer.messages('hello')[1]).toMatchObject({ drainReason: HOST_DRAIN_REASON });
    await daemon.waitForLog('still drained on the host: taking no jobs until rbtk-runner resume');
    fx.peer.assign('job-refused', sh('true'));
    await fx.peer.waitFor('reject', () => fx.peer.messages('reject')[0]);
    expect(fx.peer.messages('reject')[0]).toEqual({
      type: 'reject',
      jobId: 'job-refused',
      attempt: 1,
      reason: `rbtk-runner is draining: ${HOST_DRAIN_REASON}`,
      retryable: true,
    });
    const status = JSON.parse((await runCli(['status', '--config', fx.path, '--json'])).stdout) as { daemon: { draining: unknown[] } };
    expect(status.daemon.draining).toEqual([{ source: 'host', reason: HOST_DRAIN_REASON, since: expect.any(String) }]);

    // resume lifts it across a restart too.
    const resumed = await runCli(['resume', '--config', fx.path]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(existsSync(file)).toBe(false);
    await fx.peer.waitFor('resume frame', () => fx.peer.messages('drain').find((d) => !d.draining));
    daemon.kill('SIGKILL');
    await daemon.exited;
    await start();
    expect(fx.peer.messages('hello')[2]).not.toHaveProperty('drainReason');
    fx.peer.assign('job-ok', sh('echo ok'));
    expect(await fx.peer.waitForResult('job-ok')).toMatchObject({ outcome: 'succeeded' });
  });
});
