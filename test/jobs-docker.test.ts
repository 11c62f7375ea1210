import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { ensureTestImage, requireDocker, TEST_IMAGE } from '../packages/agent/test/helpers/docker.js';
import { Fleet } from './helpers/fleet.js';
import { Jobs } from './helpers/jobs.js';
import { waitFor } from './helpers/processes.js';

const hasDocker = await requireDocker('docker job e2e tests');

/* Docker jobs end to end: coordinator, rbtk-runner and a real Docker Engine. */
describe.skipIf(!hasDocker)('docker jobs through a real runner and dockerd', () => {
  let fleet: Fleet;
  let jobs: Jobs;
  let runnerId: string;

  beforeAll(async () => {
    await ensureTestImage();
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '3s', heartbeatInterval: '200ms' });
    jobs = new Jobs(fleet);
    expect((await fleet.rbtk(['pool', 'create', 'build'])).code).toBe(0);
    runnerId = await fleet.registerRunner('build', 'docker-host', '--executor', 'docker', '--max-jobs', '2');
    fleet.startRunner('docker-host');
    await waitFor('ONLINE', async () => (await fleet.runnerStatus(runnerId)) === 'ONLINE');
  });

  afterAll(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  it('runs a container to success with stdout and stderr', async () => {
    const res = await fleet.rbtk([
      'job', 'submit', '--pool', 'build', '--image', TEST_IMAGE, '--pull', 'never', '--follow',
      '--', 'sh', '-c', 'echo from-container; echo to-stderr >&2',
    ]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('from-container');
    expect(res.stderr).toContain('to-stderr');
  });

  it('reports a container\'s exit code', async () => {
    const res = await fleet.rbtk(['job', 'submit', '--pool', 'build', '--image', TEST_IMAGE, '--pull', 'never', '--follow', '--', 'sh', '-c', 'exit 7']);
    expect(res.code).toBe(7);
  });

  it('fails a job whose image is missing, saying so', async () => {
    const job = await jobs.submit({ pool: 'build', executor: { type: 'docker', image: 'rbtk-test/absent:1', pull: 'never', command: ['true'] } });
    const failed = await jobs.waitForState(job.id, ['failed']);
    expect(failed.reason).toMatch(/rbtk-test\/absent:1/);
  });

  it('stops a container at its timeout', async () => {
    const job = await jobs.submit({ pool: 'build', timeout: '1s', executor: { type: 'docker', image: TEST_IMAGE, pull: 'never', command: ['sleep', '60'] } });
    const done = await jobs.waitForState(job.id, ['timed_out'], 30_000);
    expect(done.state).toBe('timed_out');
  });

  it('removes its leftover container after a SIGKILL mid-job and ends the job exactly once', async () => {
    const docker = new Docker();
    const job = await jobs.submit({
      pool: 'build',
      retries: 1,
      executor: { type: 'docker', image: TEST_IMAGE, pull: 'never', command: ['sh', '-c', 'echo begin; sleep 60'] },
    });
    await jobs.waitForState(job.id, ['running']);
    const labelled = () => docker.listContainers({ all: true, filters: { label: [`rbtk.job=${job.id}`] } });
    expect(await labelled()).toHaveLength(1);

    fleet.procs.find('runner docker-host').kill('SIGKILL');
    const restarted = fleet.startRunner('docker-host');
    await restarted.waitForLog((l) => l.msg === 'removed a job container left by a previous run');
    // The crashed attempt is reported failed, then retried once on the fresh daemon.
    await waitFor('retried attempt running', async () => {
      const j = await jobs.get(job.id);
      return j.attempt === 2 && j.state === 'running' ? j : undefined;
    }, 30_000);
    const containers = await labelled();
    expect(containers.map((c) => c.Labels['rbtk.attempt'])).toEqual(['2']);
    expect((await jobs.cancel(job.id)).id).toBe(job.id);
    const done = await jobs.waitForState(job.id, ['cancelled'], 30_000);
    expect(done.attempt).toBe(2);
    await waitFor('no container left', async () => (await labelled()).length === 0, 20_000);
  });
});
