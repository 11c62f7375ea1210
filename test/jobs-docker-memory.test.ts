import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestImage, requireDocker, TEST_IMAGE } from '../packages/agent/test/helpers/docker.js';
import { GROW_TO_64M, requireMemoryLimits } from '../packages/agent/test/helpers/docker-memory.js';
import { Fleet } from './helpers/fleet.js';
import { Jobs } from './helpers/jobs.js';
import { waitFor } from './helpers/processes.js';

const hasDocker = await requireDocker('docker memory limit e2e tests');
// An engine that cannot enforce memory limits skips the OOM cases, even under CI (see requireMemoryLimits).
const enforced = hasDocker && (await requireMemoryLimits('docker OOM e2e tests'));

/* `rbtk job submit --memory` end to end: coordinator, rbtk-runner and the real Docker Engine's OOM killer. */
describe.skipIf(!hasDocker)('docker jobs with a memory limit', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  const submit = (memory: string, script: string) =>
    fleet.rbtk(['job', 'submit', '--pool', 'mem', '--image', TEST_IMAGE, '--pull', 'never', '--memory', memory, '--follow', '--', 'sh', '-c', script]);
  const jobIdOf = (stderr: string) => /job (\S+) \(pool mem\)/.exec(stderr)?.[1] ?? '';

  beforeAll(async () => {
    await ensureTestImage();
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '3s', heartbeatInterval: '200ms' });
    jobs = new Jobs(fleet);
    expect((await fleet.rbtk(['pool', 'create', 'mem'])).code).toBe(0);
    const runnerId = await fleet.registerRunner('mem', 'mem-host', '--executor', 'docker');
    fleet.startRunner('mem-host');
    await waitFor('ONLINE', async () => (await fleet.runnerStatus(runnerId)) === 'ONLINE');
  });

  afterAll(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  it('runs a job within its limit to success, the limit kept in the job spec', async () => {
    const res = await submit('64m', 'echo fits');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe('fits\n');
    const job = await jobs.get(jobIdOf(res.stderr));
    expect(job.spec.executor).toMatchObject({ type: 'docker', memory: '64m' });
  });

  it.skipIf(!enforced)('gives the container exactly that limit, with no swap beyond it', async () => {
    // cgroup v2: memory.max, and memory.swap.max 0; v1: memory.limit_in_bytes, and memory plus swap
    // (memsw, absent without swap accounting: then there is no swap to limit) equal to it.
    const read = [
      'cd /sys/fs/cgroup',
      'if [ -e memory.max ]; then cat memory.max memory.swap.max',
      'else cat memory/memory.limit_in_bytes; cat memory/memory.memsw.limit_in_bytes 2>/dev/null || echo no swap accounting; fi',
    ].join('; ');
    const res = await submit('64m', read);
    expect(res.code, res.stderr).toBe(0);
    const [memory, swap] = res.stdout.trim().split('\n');
    expect(memory).toBe(String(64 * 2 ** 20));
    expect(['0', String(64 * 2 ** 20), 'no swap accounting']).toContain(swap);
  });

  it.skipIf(!enforced)('fails a job the OOM killer ended as out of memory, in the job, --follow and the runner log', async () => {
    const res = await submit('8m', `echo growing; ${GROW_TO_64M}`);
    const id = jobIdOf(res.stderr);
    const reason = 'out of memory: the container was killed by the kernel OOM killer (limit 8 MiB)';
    expect(res.code).toBe(137);
    expect(res.stdout).toBe('growing\n');
    expect(res.stderr).toContain(`rbtk: job ${id} failed: ${reason} (exit code 137)`);
    expect(await jobs.get(id)).toMatchObject({ state: 'failed', exitCode: 137, reason });
    const line = await fleet.procs.find('runner mem-host').waitForLog((l) => l.msg === 'job finished' && l.jobId === id);
    expect(line).toMatchObject({ outcome: 'failed', exitCode: 137, oomKilled: true, message: reason });
  });
});
