import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ShellExecutor } from '../src/executors/shell.js';
import { findAttemptProcessGroups } from '../src/executors/shell-orphans.js';
import { MemorySink } from './helpers/sink.js';

const ref = { runnerId: 'runner0000000001', jobId: 'job1', attempt: 1 };
const sh = (script: string, env: Record<string, string> = {}) => ({ type: 'shell' as const, command: ['sh', '-c', script], env });

/** Running, not a zombie waiting for a reaper (PID 1 of a container may never reap it). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

describe('ShellExecutor', () => {
  it('runs a command to success, keeping stdout and stderr apart and every line in order', async () => {
    const sink = new MemorySink();
    const execution = new ShellExecutor().start(ref, sh('for i in 1 2 3 4 5; do echo out $i; echo err $i >&2; done'), sink);
    expect(await execution.wait()).toEqual({ outcome: 'succeeded', exitCode: 0 });
    expect(sink.startedCount).toBe(1);
    expect(sink.text('stdout')).toBe('out 1\nout 2\nout 3\nout 4\nout 5\n');
    expect(sink.text('stderr')).toBe('err 1\nerr 2\nerr 3\nerr 4\nerr 5\n');
  });

  it('reports a non-zero exit as failed with its code', async () => {
    const sink = new MemorySink();
    const result = await new ShellExecutor().start(ref, sh('echo bye; exit 42'), sink).wait();
    expect(result).toEqual({ outcome: 'failed', exitCode: 42, message: 'exited with code 42' });
    expect(sink.text()).toBe('bye\n');
  });

  it('gives the job a minimal environment plus its own env, not the daemon\'s', async () => {
    process.env.RBTK_SECRET_OF_THE_DAEMON = 'x';
    try {
      const sink = new MemorySink();
      await new ShellExecutor({ home: '/tmp' }).start(ref, sh('env', { GREETING: 'hi there' }), sink).wait();
      const env = sink.text('stdout');
      expect(env).toContain('GREETING=hi there\n');
      expect(env).toContain('HOME=/tmp\n');
      expect(env).toMatch(/^PATH=\/usr\/local\/sbin:/m);
      expect(env).toContain('RBTK_JOB_ID=job1\n');
      expect(env).toContain('RBTK_JOB_ATTEMPT=1\n');
      expect(env).not.toContain('RBTK_SECRET_OF_THE_DAEMON');
    } finally {
      delete process.env.RBTK_SECRET_OF_THE_DAEMON;
    }
  });

  it('finds the process group of an attempt still running by its environment, and only that attempt\'s', async () => {
    const sink = new MemorySink();
    const execution = new ShellExecutor().start({ ...ref, jobId: 'orphan1' }, sh('sleep 30 & echo up; wait'), sink);
    await sink.waitForText('up');
    const pgid = sink.pgid!;
    try {
      expect(findAttemptProcessGroups({ jobId: 'orphan1', attempt: 1 })).toEqual([pgid]);
      expect(findAttemptProcessGroups({ jobId: 'orphan1', attempt: 2 })).toEqual([]);
      expect(findAttemptProcessGroups({ jobId: 'someone-else', attempt: 1 })).toEqual([]);
    } finally {
      execution.stop({ outcome: 'cancelled', message: 'test over' });
      await execution.wait();
    }
    expect(findAttemptProcessGroups({ jobId: 'orphan1', attempt: 1 })).toEqual([]);
  });

  it('fails without an exit code when the program does not exist', async () => {
    const result = await new ShellExecutor().start(ref, { type: 'shell', command: ['/no/such/program'], env: {} }, new MemorySink()).wait();
    expect(result.outcome).toBe('failed');
    expect(result.exitCode).toBeNull();
    expect(result.message).toMatch(/^cannot run "\/no\/such\/program": spawn \/no\/such\/program ENOENT/);
  });

  it('says so when the working directory is what does not exist', async () => {
    const result = await new ShellExecutor().start(ref, { type: 'shell', command: ['true'], env: {}, workdir: '/no/such/dir' }, new MemorySink()).wait();
    expect(result).toEqual({ outcome: 'failed', exitCode: null, message: 'cannot run "true": the working directory /no/such/dir does not exist on this runner' });
  });

  it('stops the whole process group: SIGTERM, then SIGKILL after the grace period', async () => {
    const sink = new MemorySink();
    // The shell ignores SIGTERM, so only the SIGKILL after the grace ends it; its background child goes too.
    const execution = new ShellExecutor({ graceMs: 300 }).start(ref, sh('trap "" TERM; sleep 30 & echo child $!; wait; wait'), sink);
    await sink.waitForText('child ');
    const child = Number(/child (\d+)/.exec(sink.text())![1]);
    const stoppedAt = Date.now();
    execution.stop({ outcome: 'timed_out', message: 'timed out after 1s' });
    const result = await execution.wait();
    expect(result).toEqual({ outcome: 'timed_out', exitCode: 137, message: 'timed out after 1s' });
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(250);
    expect(alive(child)).toBe(false);
  });

  it('a job that exits on SIGTERM ends at once, reported as cancelled with 128+15', async () => {
    const sink = new MemorySink();
    const execution = new ShellExecutor({ graceMs: 10_000 }).start(ref, sh('echo ready; exec sleep 30'), sink);
    await sink.waitForText('ready');
    const stoppedAt = Date.now();
    execution.stop({ outcome: 'cancelled', message: 'cancelled' });
    expect(await execution.wait()).toEqual({ outcome: 'cancelled', exitCode: 143, message: 'cancelled' });
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
  });
});
