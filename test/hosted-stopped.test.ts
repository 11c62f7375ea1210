import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostedPoolStatus, Job } from '@rbtk/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findRunnerBin } from '../packages/coordinator/src/dev/runner-process.js';
import { ProcessProvider } from '../packages/coordinator/src/hosted/process-provider.js';
import type { HostedProviderImpl, MemberHandle, MemberLaunch } from '../packages/coordinator/src/hosted/provider.js';
import { HOSTED_DIR } from '../packages/coordinator/src/hosted/start.js';
import { type Coordinator, startCoordinator } from '../packages/coordinator/src/index.js';
import { testLogger } from '../packages/coordinator/test/helpers.js';
import { adminApi, killMembers, memberPids, procState } from './helpers/hosted.js';
import { waitFor } from './helpers/processes.js';

/*
 * Stopped mode without the wait: a member is stopped as soon as it is ready
 * (not at the next reconcile pass: the interval here is an hour), and a job
 * that comes while its member is being stopped is served by that member,
 * started again at once, even with --on-empty fail. The process provider,
 * with its stop() held open by the test so the race is not left to chance.
 */

/** The process provider, whose stop() waits for the test to let it go while `hold` is set. */
class HeldStop implements HostedProviderImpl {
  readonly name = 'process';
  hold = true;
  private release: (() => void) | null = null;
  private gate: Promise<void> = new Promise((r) => (this.release = r));
  /** Member ids whose stop was asked for, in order. */
  readonly stopsAsked: string[] = [];

  constructor(private readonly inner: ProcessProvider) {}

  letGo(): void {
    this.hold = false;
    this.release?.();
  }

  create(launch: MemberLaunch): Promise<MemberHandle> {
    return this.inner.create(launch);
  }
  start(memberId: string, handle: MemberHandle): Promise<MemberHandle> {
    return this.inner.start(memberId, handle);
  }
  async stop(memberId: string, handle: MemberHandle): Promise<void> {
    this.stopsAsked.push(memberId);
    if (this.hold) await this.gate;
    return this.inner.stop(memberId, handle);
  }
  terminate(memberId: string, handle: MemberHandle | null): Promise<void> {
    return this.inner.terminate(memberId, handle);
  }
  listOwned() {
    return this.inner.listOwned();
  }
}

describe('hosted stopped mode: prompt stop, and a claim racing it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rbtk-stopped-'));
  const dataDir = join(dir, 'coordinator');
  const provider = new HeldStop(new ProcessProvider({ root: join(dataDir, HOSTED_DIR), runnerBin: findRunnerBin() }));
  let coordinator: Coordinator;
  let admin = '';

  const call = adminApi(() => ({ url: coordinator.url, token: admin }));
  const status = () => call<HostedPoolStatus>('GET', '/v1/pools/cold/hosted');

  beforeAll(async () => {
    coordinator = await startCoordinator({
      dataDir,
      host: '127.0.0.1',
      port: 0,
      logger: testLogger(),
      // No periodic pass comes in this test's time: what happens, a ready member or a claim set off.
      hostedReconcileIntervalMs: 60 * 60_000,
      hostedProviders: { process: provider },
    });
    admin = readFileSync(coordinator.adminTokenFile, 'utf8').trim();
  });

  afterAll(async () => {
    provider.letGo();
    await coordinator?.stop();
    killMembers(dataDir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('stops a member once it is ready, and a job that comes during the stop runs on it', async () => {
    await call('POST', '/v1/pools', { name: 'cold', type: 'hosted', hosted: { provider: 'process', target: 1, max: 2, mode: 'stopped', onEmpty: 'fail' } });
    // Its hello set off a pass at once: the stop is asked for within seconds, not at the next interval.
    const memberId = await waitFor('a stop asked for', () => provider.stopsAsked[0], 20_000, 20);
    const during = await status();
    const member = during.members.find((m) => m.id === memberId)!;
    expect(member.state).toBe('ready');
    expect(during.recentActions.some((a) => a.action === 'stop' && a.memberId === memberId)).toBe(true);

    // No member is ready for it (the one there is being stopped, out of dispatch): before, --on-empty fail refused it.
    const job = await call<Job>('POST', '/v1/jobs', { pool: 'cold', executor: { type: 'shell', command: ['sh', '-c', 'echo raced'] } });
    expect(job.state).toBe('queued');
    provider.letGo();
    const done = await waitFor('the raced job done', async () => {
      const j = await call<Job>('GET', `/v1/jobs/${job.id}`);
      return j.state === 'succeeded' || j.state === 'failed' ? j : undefined;
    }, 20_000, 50);
    expect(done.state).toBe('succeeded');
    expect(done.runnerId).toBe(member.runnerId);
    const after = await status();
    const mine = after.recentActions.filter((a) => a.memberId === memberId).map((a) => `${a.action}:${a.reason}`);
    expect(mine.slice(0, 3)).toEqual(['create:target', 'stop:stopped_mode', 'start:claim']);
    expect(after.warmHits).toBe(1);
    expect(after.warmMisses).toBe(0);

    // Its replacement (--return terminate) is stopped as soon as it is ready too: still no periodic pass.
    const replaced = await waitFor('the replacement stopped', async () => {
      const s = await status();
      return s.counts.stopped === 1 && s.members.length === 1 && s.members[0]!.id !== memberId ? s : undefined;
    }, 30_000, 50);
    expect(provider.stopsAsked).toContain(replaced.members[0]!.id);
    const pids = memberPids(dataDir);
    expect(pids).toHaveLength(1);
    expect(procState(pids[0]!)).toBe('T');
  });
});
