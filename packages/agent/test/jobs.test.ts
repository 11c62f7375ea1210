import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { RunnerConfig } from '@rbtk/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAgent, type AgentOptions } from '../src/agent.js';
import { writeConfig } from '../src/config/write.js';
import { fetchDaemonStatus } from '../src/control/client.js';
import type { DaemonResult } from '../src/daemon.js';
import { RESTARTED_MESSAGE, STOPPED_MESSAGE } from '../src/jobs/manager.js';
import { Spool } from '../src/jobs/spool.js';
import { CoordinatorPeer, type PeerOptions } from './helpers/coordinator-peer.js';
import { containersLabelled, ensureTestImage, removeContainersLabelled, requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { HOST, memoryLogger, runnerConfig, tempDir, type MemoryLog } from './helpers/fixtures.js';

const hasDocker = await requireDocker('docker job tests');

describe('jobs through the runner daemon and a real WebSocket peer', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let peer: CoordinatorPeer;
  let controller: AbortController;
  let running: Promise<DaemonResult> | undefined;
  let config: RunnerConfig;
  let log: MemoryLog;
  // Per test: containers of other test files (or a real runner) are never touched.
  let runnerId: string;

  const stateDir = () => join(dir, 'state');
  const spoolDirs = async () => (existsSync(join(stateDir(), 'spool')) ? readdir(join(stateDir(), 'spool')) : []);
  const logged = (msg: string) => log.lines.filter((l) => l.msg === msg);

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    controller = new AbortController();
    log = memoryLogger();
    runnerId = `runner${randomBytes(5).toString('hex')}`;
  });

  afterEach(async () => {
    controller.abort();
    await running?.catch(() => undefined);
    running = undefined;
    await peer?.close();
    if (hasDocker) await removeContainersLabelled(`rbtk.runner=${runnerId}`);
    await cleanup();
  });

  async function start(overrides: Partial<RunnerConfig> = {}, peerOptions: PeerOptions = {}, options: Partial<AgentOptions> = {}) {
    peer = await CoordinatorPeer.start({ heartbeatIntervalMs: 50, ...peerOptions });
    config = runnerConfig(peer.url, { runner_id: runnerId, executors: ['docker', 'shell'], shutdown_timeout: '5s', ...overrides });
    const configPath = join(dir, 'runner.yaml');
    await writeConfig(configPath, config);
    running = runAgent(
      {
        config,
        configPath,
        logger: log.logger,
        env: {},
        hostFacts: async () => HOST,
        agentVersion: '0.1.0',
        backoff: { baseMs: 20, capMs: 100 },
        executorOptions: { shellGraceMs: 500, dockerStopTimeoutS: 1 },
        ...options,
      },
      controller.signal,
    );
    await peer.waitFor('welcome', () => peer.live && peer.messages('hello').length > 0);
  }

  const sh = (script: string) => ({ pool: 'ci', executor: { type: 'shell' as const, command: ['sh', '-c', script] } });

  it('runs a shell job: accept, started, every log byte in order, the result; then forgets it', async () => {
    await start();
    peer.assign('job-ok', sh('for i in 1 2 3; do echo out $i; echo err $i >&2; done; echo done'));
    const result = await peer.waitForResult('job-ok');
    expect(result).toEqual({ type: 'result', jobId: 'job-ok', attempt: 1, outcome: 'succeeded', exitCode: 0, logBytes: 41 });
    const types = peer.received.map((r) => r.message).filter((m) => 'jobId' in m).map((m) => m.type);
    expect(types.slice(0, 2)).toEqual(['accept', 'started']);
    expect(types.at(-1)).toBe('result');
    expect(peer.logText('job-ok', 1, 'stdout')).toBe('out 1\nout 2\nout 3\ndone\n');
    expect(peer.logText('job-ok', 1, 'stderr')).toBe('err 1\nerr 2\nerr 3\n');
    expect(peer.logs.get('job-ok#1')!.length).toBe(41);
    // result_ack deletes the attempt from the spool.
    await peer.waitFor('spool emptied', async () => (await spoolDirs()).length === 0 || undefined);
    await peer.waitFor('spool emptied', () => logged('job finished')[0]);
    expect(logged('job finished')[0]).toMatchObject({ jobId: 'job-ok', attempt: 1, outcome: 'succeeded', exitCode: 0, logBytes: 41 });
  });

  it('reports a failing shell job with its exit code and its whole log', async () => {
    await start();
    peer.assign('job-fail', sh('echo about to fail; echo really >&2; exit 3'));
    expect(await peer.waitForResult('job-fail')).toMatchObject({ outcome: 'failed', exitCode: 3, message: 'exited with code 3', logBytes: 21 });
    expect(peer.logText('job-fail')).toBe('about to fail\nreally\n');
  });

  it('rejects a job for an executor it does not offer, and one beyond its slots', async () => {
    await start({ executors: ['shell'], max_jobs: 1 });
    peer.assign('job-docker', { pool: 'ci', executor: { type: 'docker', image: TEST_IMAGE } });
    peer.assign('job-long', sh('sleep 30'));
    peer.assign('job-extra', sh('true'));
    await peer.waitFor('two rejects', () => peer.messages('reject').length === 2).catch((err: Error) => {
      throw new Error(`${err.message}\n${log.text()}`);
    });
    expect(peer.messages('reject')).toEqual([
      { type: 'reject', jobId: 'job-docker', attempt: 1, reason: 'executor "docker" is not enabled on this runner (executors: shell)', retryable: false },
      { type: 'reject', jobId: 'job-extra', attempt: 1, reason: 'no free slot: 1 of 1 jobs running', retryable: true },
    ]);
    await peer.waitFor('accept', () => peer.messages('accept')[0]);
    // A cancel for an attempt it never held is answered, so the coordinator frees the slot it kept for it.
    peer.cancel('job-elsewhere', 2, 'stale');
    await peer.waitFor('a third reject', () => peer.messages('reject')[2]);
    expect(peer.messages('reject')[2]).toEqual({ type: 'reject', jobId: 'job-elsewhere', attempt: 2, reason: 'not held: nothing to stop', retryable: true });
    peer.cancel('job-long');
    expect(await peer.waitForResult('job-long')).toMatchObject({ outcome: 'cancelled', exitCode: 143, message: 'cancelled' });
  });

  it('times a shell job out: SIGTERM, SIGKILL after the grace, result timed_out', async () => {
    await start();
    peer.assign('job-slow', sh('trap "" TERM; echo started; sleep 30'), { timeoutMs: 300 });
    const result = await peer.waitForResult('job-slow');
    expect(result).toMatchObject({ outcome: 'timed_out', exitCode: 137, message: 'timed out after 300ms' });
    expect(peer.logText('job-slow')).toBe('started\n');
  });

  it('shows held jobs on the control socket', async () => {
    await start();
    peer.assign('job-status', sh('echo hi; sleep 30'));
    await peer.waitFor('started', () => peer.messages('started')[0]);
    const answer = await fetchDaemonStatus(join(stateDir(), 'control.sock'));
    expect(answer.running && answer.status.jobs).toEqual([{ jobId: 'job-status', attempt: 1, state: 'running' }]);
    peer.cancel('job-status');
    await peer.waitForResult('job-status');
  });

  it('keeps a multibyte character whole when the process writes it in two pieces', async () => {
    await start();
    // € is e2 82 ac: two bytes, a pause (two reads), then the last one.
    peer.assign('job-utf8', sh("printf 'price: \\342\\202'; sleep 0.3; printf '\\254 12\\n'"));
    expect(await peer.waitForResult('job-utf8')).toMatchObject({ outcome: 'succeeded', logBytes: Buffer.byteLength('price: € 12\n') });
    expect(peer.logText('job-utf8')).toBe('price: € 12\n');
    for (const frame of peer.messages('log')) expect(frame.data).not.toContain('\uFFFD');
  });

  it('loses no byte across a dropped connection: resends from the last ack, the result arrives once', async () => {
    await start();
    const lines = Array.from({ length: 40 }, (_, i) => `line ${i} é€😀\n`).join('');
    peer.assign('job-resend', sh('i=0; while [ $i -lt 40 ]; do echo "line $i é€😀"; i=$((i+1)); sleep 0.03; done'));
    await peer.waitFor('some log', () => peer.logText('job-resend').includes('line 10 '));
    // Cut the TCP connection: frames in flight are lost, nothing is closed cleanly.
    for (const ws of peer.sockets) ws.terminate();
    await peer.waitFor('second hello', () => peer.messages('hello').length === 2, 10_000);
    expect(peer.messages('hello')[1]!.held).toEqual([{ jobId: 'job-resend', attempt: 1, finished: false }]);
    const result = await peer.waitForResult('job-resend');
    expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0, logBytes: Buffer.byteLength(lines) });
    expect(peer.logText('job-resend')).toBe(lines);
    await new Promise((r) => setTimeout(r, 200));
    expect(peer.results('job-resend')).toHaveLength(1);
    // `started` once per connection: a started lost with the old socket would leave the job assigned.
    expect(peer.messages('started').filter((m) => m.jobId === 'job-resend')).toHaveLength(2);
    await peer.waitFor('spool emptied', async () => (await spoolDirs()).length === 0 || undefined);
  });

  it('reports a shell attempt left in the spool by a previous run as failed, with its log', async () => {
    const spool = new Spool(join(stateDir(), 'spool'));
    const left = await spool.create({ jobId: 'job-orphan', attempt: 2, executor: 'shell', acceptedAt: new Date().toISOString() });
    left.append([{ stream: 'stdout', data: 'before the crash\n' }]);
    await left.idle();
    await start();
    expect(peer.messages('hello')[0]!.held).toEqual([{ jobId: 'job-orphan', attempt: 2, finished: true }]);
    expect(await peer.waitForResult('job-orphan', 2)).toEqual({
      type: 'result',
      jobId: 'job-orphan',
      attempt: 2,
      outcome: 'failed',
      exitCode: null,
      message: RESTARTED_MESSAGE,
      logBytes: 17,
    });
    expect(peer.logText('job-orphan', 2)).toBe('before the crash\n');
    await peer.waitFor('spool emptied', async () => (await spoolDirs()).length === 0 || undefined);
  });

  it('answers a repeated assign of a running attempt with accept again, and runs it once', async () => {
    await start();
    peer.assign('job-twice', sh('echo once; sleep 0.3'));
    await peer.waitFor('started', () => peer.messages('started')[0]);
    peer.assign('job-twice', sh('echo once; sleep 0.3'));
    await peer.waitForResult('job-twice');
    expect(peer.messages('accept')).toHaveLength(2);
    expect(peer.messages('started')).toHaveLength(1);
    expect(peer.logText('job-twice')).toBe('once\n');
  });

  it('survives a spool removal that fails after the result_ack (a .removing left in the way): logs it, keeps running', async () => {
    await start();
    // An earlier rm that failed midway leaves `<attempt>.removing` non-empty: the rename onto it gets ENOTEMPTY.
    await mkdir(join(stateDir(), 'spool', 'job-stuck-1.removing', 'leftover'), { recursive: true });
    peer.assign('job-stuck', sh('echo hi'));
    expect(await peer.waitForResult('job-stuck')).toMatchObject({ outcome: 'succeeded' });
    const failed = await peer.waitFor('logged', () => logged('cannot remove an acknowledged attempt from the spool')[0]);
    expect(failed).toMatchObject({ level: 50, jobId: 'job-stuck', attempt: 1, err: expect.stringContaining('ENOTEMPTY') });
    // The daemon lives on and takes the next job; the attempt stays on disk for the next start to resend.
    peer.assign('job-after', sh('echo after'));
    expect(await peer.waitForResult('job-after')).toMatchObject({ outcome: 'succeeded' });
    expect(await spoolDirs()).toContain('job-stuck-1');
  });

  it('on stop, lets a job finish within shutdown_timeout and sends its result before closing', async () => {
    await start({ shutdown_timeout: '10s' });
    peer.assign('job-finish', sh('sleep 0.3; echo finished'));
    await peer.waitFor('started', () => peer.messages('started')[0]);
    controller.abort();
    await running;
    expect(peer.results('job-finish')).toEqual([expect.objectContaining({ outcome: 'succeeded', exitCode: 0 })]);
    expect(peer.logText('job-finish')).toBe('finished\n');
    expect(await spoolDirs()).toEqual([]);
  });

  it('on stop, stops a job still running after shutdown_timeout and reports it cancelled', async () => {
    await start({ shutdown_timeout: '300ms' });
    peer.assign('job-stopped', sh('echo working; exec sleep 30'));
    await peer.waitFor('started', () => peer.messages('started')[0]);
    controller.abort();
    await running;
    expect(peer.results('job-stopped')).toEqual([
      expect.objectContaining({ outcome: 'cancelled', exitCode: 143, message: `${STOPPED_MESSAGE}: shutdown_timeout (300ms) passed`, logBytes: 8 }),
    ]);
    await peer.waitFor('close', () => peer.closes[0]);
    expect(peer.closes[0]).toMatchObject({ code: 1000 });
  });

  describe.skipIf(!hasDocker)('docker jobs', () => {
    const docker = new Docker();
    beforeEach(async () => {
      await ensureTestImage(docker);
    });
    const dk = (script: string, extra: object = {}) => ({
      pool: 'ci',
      executor: { type: 'docker' as const, image: TEST_IMAGE, command: ['sh', '-c', script], pull: 'never' as const, ...extra },
    });

    it('runs a docker job: stdout and stderr apart, exit code, container gone afterwards', async () => {
      await start();
      peer.assign('job-dk', dk('echo out; echo err >&2; exit 5'));
      expect(await peer.waitForResult('job-dk')).toMatchObject({ outcome: 'failed', exitCode: 5, logBytes: 8 });
      expect(peer.logText('job-dk', 1, 'stdout')).toBe('out\n');
      expect(peer.logText('job-dk', 1, 'stderr')).toBe('err\n');
      expect(await containersLabelled(`rbtk.runner=${runnerId}`)).toEqual([]);
    });

    it('times a docker job out with docker stop and reports timed_out', async () => {
      await start();
      peer.assign('job-dk-slow', dk('trap "" TERM; echo up; while true; do sleep 1; done'), { timeoutMs: 500 });
      expect(await peer.waitForResult('job-dk-slow')).toMatchObject({ outcome: 'timed_out', exitCode: 137, message: 'timed out after 500ms' });
      expect(peer.logText('job-dk-slow')).toBe('up\n');
      expect(await containersLabelled(`rbtk.runner=${runnerId}`)).toEqual([]);
    });

    it('fails a job whose image is missing under pull never, with the spec\'s message', async () => {
      await start();
      peer.assign('job-noimg', dk('true', { image: 'rbtk-test/nothere:1' }));
      expect(await peer.waitForResult('job-noimg')).toMatchObject({
        outcome: 'failed',
        exitCode: null,
        message: 'image rbtk-test/nothere:1 is not on this host (pull policy never)',
      });
      expect(peer.messages('started')).toEqual([]);
    });

    it('at start, removes containers a previous run left and reports their attempts failed', async () => {
      const container = await docker.createContainer({
        name: `rbtk-job-left-${runnerId}-4`,
        Image: TEST_IMAGE,
        Cmd: ['sleep', '300'],
        Labels: { 'rbtk.runner': runnerId, 'rbtk.job': 'job-left', 'rbtk.attempt': '4' },
        HostConfig: { NetworkMode: 'none' },
      });
      await container.start();
      await start();
      expect(peer.messages('hello')[0]!.held).toEqual([{ jobId: 'job-left', attempt: 4, finished: true }]);
      expect(await peer.waitForResult('job-left', 4)).toMatchObject({ outcome: 'failed', exitCode: null, message: RESTARTED_MESSAGE });
      expect(await containersLabelled(`rbtk.runner=${runnerId}`)).toEqual([]);
      expect(logged('removed a job container left by a previous run')[0]).toMatchObject({ jobId: 'job-left', attempt: 4 });
    });
  });
});
