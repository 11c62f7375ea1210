import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureTestImage, requireDocker, TEST_IMAGE } from '../packages/agent/test/helpers/docker.js';
import { Fleet } from './helpers/fleet.js';
import { Jobs, shell } from './helpers/jobs.js';
import type { JobSpecInput } from '@rbtk/protocol';
import { REPO_ROOT } from './helpers/processes.js';

const PRELOAD = fileURLToPath(new URL('./helpers/loaded-scripts.cjs', import.meta.url));
const hasDocker = await requireDocker('the docker runner case of the bundle test');

/**
 * rbtk-runner runs as one bundled file (packages/agent/scripts/bundle.mjs),
 * for its memory: an idle host pays for what it loads. This checks what a
 * real daemon loads, idle and running a job: the bin and the bundle, and
 * nothing from node_modules (the metrics, GPU and register packages load on
 * first use only; dockerode is bundled, without the gRPC, protobuf and ssh2
 * modules it loads for BuildKit sessions and ssh:// hosts).
 */
describe('rbtk-runner as it ships: one bundled file', () => {
  let fleet: Fleet;

  beforeEach(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ heartbeatInterval: '200ms' });
    expect((await fleet.rbtk(['pool', 'create', 'build'])).code).toBe(0);
  });

  afterEach(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  async function loadedScripts(executor: 'shell' | 'docker', spec: JobSpecInput, expectedLog: string): Promise<string[]> {
    await fleet.registerRunner('build', 'host-a', '--executor', executor);
    const listFile = join(fleet.dir, 'loaded-scripts.txt');
    const runner = fleet.startRunner('host-a', { NODE_OPTIONS: `--require ${PRELOAD}`, RBTK_TEST_LOADED_SCRIPTS: listFile });
    await runner.waitForLog((l) => l.msg === 'connected');
    const jobs = new Jobs(fleet);
    const job = await jobs.submit(spec);
    expect((await jobs.waitForState(job.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    expect(await jobs.log(job.id)).toBe(expectedLog);
    await runner.stop();
    return (await readFile(listFile, 'utf8'))
      .split('\n')
      .map((url) => fileURLToPath(url))
      .filter((path) => path !== PRELOAD);
  }

  const SHIPPED = [`${REPO_ROOT}packages/agent/bin/rbtk-runner.js`, `${REPO_ROOT}packages/agent/dist/bundle/rbtk-runner.js`];

  it('a shell runner loads only the bin and the bundle, idle and through a job', async () => {
    expect(await loadedScripts('shell', shell('echo bundled'), 'bundled\n')).toEqual(SHIPPED);
  });

  it.skipIf(!hasDocker)('a docker runner loads only the bin and the bundle, idle and through a container job', async () => {
    await ensureTestImage();
    const spec: JobSpecInput = { pool: 'build', executor: { type: 'docker', image: TEST_IMAGE, pull: 'never', command: ['echo', 'contained'] } };
    expect(await loadedScripts('docker', spec, 'contained\n')).toEqual(SHIPPED);
  });
});
