import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeConfig } from '../src/config/write.js';
import { AlreadyRunningError } from '../src/errors.js';
import { lockInstance } from '../src/instance-lock.js';
import { runCli } from './helpers/cli.js';
import { daemonFixture } from './helpers/daemon-fixture.js';
import { runnerConfig } from './helpers/fixtures.js';

const sh = (script: string) => ({ pool: 'ci', executor: { type: 'shell' as const, command: ['sh', '-c', script] } });

describe('one rbtk-runner per state directory and runner.yaml', () => {
  const fx = daemonFixture();
  const start = fx.start;
  const attemptDir = () => join(fx.dir, 'state', 'spool', 'job-live-1');

  it('a second `run` exits 2 before it touches anything: the live job keeps running and reports its real result', async () => {
    const first = start();
    await first.waitForLog('connected');
    fx.peer.assign('job-live', sh('echo begin; sleep 1.5; echo end'));
    await fx.peer.waitFor('started and logging', () => fx.peer.logText('job-live') === 'begin\n');
    // Once its process group is in meta.json, which is what a second start would find and kill.
    let meta = '';
    for (let i = 0; !meta.includes('"pgid"'); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 20));
      meta = await readFile(join(attemptDir(), 'meta.json'), 'utf8');
    }
    const files = await readdir(attemptDir());

    const second = await runCli(['run', '--config', fx.path]);
    expect(second.code, second.stdout + second.stderr).toBe(2);
    const fatal = second.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.level === 60);
    expect(fatal).toMatchObject({ code: 'already_running', msg: expect.stringMatching(/^another rbtk-runner \(pid \d+\) is already running with this state directory /) });
    expect(second.stdout).not.toMatch(/reporting it failed|removed temp files|"msg":"starting"/);

    // Its spool is as the first daemon left it: no result written over the running attempt.
    expect(existsSync(join(attemptDir(), 'result.json'))).toBe(false);
    expect(await readFile(join(attemptDir(), 'meta.json'), 'utf8')).toBe(meta);
    expect(await readdir(attemptDir())).toEqual(files);
    expect(fx.peer.messages('hello')).toHaveLength(1);

    expect(await fx.peer.waitForResult('job-live')).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    expect(fx.peer.logText('job-live')).toBe('begin\nend\n');
    expect(fx.peer.results('job-live')).toHaveLength(1);
    // The first one's control socket still answers.
    expect((await runCli(['status', '--config', fx.path])).code).toBe(0);
  });

  it('refuses a second daemon on the same runner.yaml with another state directory', async () => {
    const first = start();
    await first.waitForLog('connected');
    const second = await runCli(['run', '--config', fx.path], { STATE_DIRECTORY: join(fx.dir, 'other-state') });
    expect(second.code, second.stdout + second.stderr).toBe(2);
    expect(second.stdout).toMatch(/another rbtk-runner \(pid \d+\) is already running with this config /);
  });

  it('a SIGKILLed daemon leaves no lock behind: the next start takes over and recovers its attempt', async () => {
    const first = start();
    await first.waitForLog('connected');
    fx.peer.assign('job-live', sh('echo begin; exec sleep 30'));
    await fx.peer.waitFor('started', () => fx.peer.messages('started')[0]);
    first.kill('SIGKILL');
    await first.exited;

    const next = start();
    await next.waitForLog('connected');
    expect(await fx.peer.waitForResult('job-live')).toMatchObject({ outcome: 'failed', message: 'rbtk-runner restarted while the job was running' });
  });

  it('lockInstance: one holder per state directory (through a symlink too) and per runner.yaml; free again once released', async () => {
    const state = join(fx.dir, 'state');
    const otherState = join(fx.dir, 'other-state');
    await mkdir(state);
    await mkdir(otherState);
    await symlink(state, join(fx.dir, 'state-link'));
    const otherConfig = join(fx.dir, 'other.yaml');
    await writeConfig(otherConfig, runnerConfig(fx.peer.url));
    const lock = await lockInstance(state, fx.path);

    const byState = await lockInstance(join(fx.dir, 'state-link'), otherConfig).catch((err: unknown) => err);
    expect(byState).toBeInstanceOf(AlreadyRunningError);
    expect((byState as Error).message).toBe(
      `another rbtk-runner (pid ${process.pid}) is already running with this state directory ${join(fx.dir, 'state-link')}; stop it first (systemctl stop rbtk-runner) — nothing was touched`,
    );
    const byConfig = await lockInstance(otherState, fx.path).catch((err: unknown) => err);
    expect((byConfig as Error).message).toMatch(/already running with this config /);
    // The state directory it took before the config refused it was let go.
    const other = await lockInstance(otherState, otherConfig);
    await other.release();

    await lock.release();
    const again = await lockInstance(state, fx.path);
    await again.release();
    // Nothing on disk to go stale.
    expect((await readdir(fx.dir)).sort()).toEqual(['other-state', 'other.yaml', 'runner.yaml', 'state', 'state-link']);
  });
});
