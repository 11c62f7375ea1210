import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Fleet } from './helpers/fleet.js';
import { Jobs, shell } from './helpers/jobs.js';
import { REPO_ROOT } from './helpers/processes.js';

const PRELOAD = fileURLToPath(new URL('./helpers/loaded-scripts.cjs', import.meta.url));

/**
 * rbtk-runner runs as one bundled file (packages/agent/scripts/bundle.mjs),
 * for its memory: an idle host pays for what it loads. This checks what a
 * real daemon loads, idle and running a shell job: the bin and the bundle,
 * and nothing from node_modules (the docker, metrics, GPU and register
 * packages load on first use only).
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

  it('loads only the bin and the bundle, idle and through a shell job', async () => {
    await fleet.registerRunner('build', 'host-a', '--executor', 'shell');
    const listFile = join(fleet.dir, 'loaded-scripts.txt');
    const runner = fleet.startRunner('host-a', { NODE_OPTIONS: `--require ${PRELOAD}`, RBTK_TEST_LOADED_SCRIPTS: listFile });
    await runner.waitForLog((l) => l.msg === 'connected');

    const jobs = new Jobs(fleet);
    const job = await jobs.submit(shell('echo bundled'));
    expect((await jobs.waitForState(job.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    expect(await jobs.log(job.id)).toBe('bundled\n');
    await runner.stop();

    const loaded = (await readFile(listFile, 'utf8'))
      .split('\n')
      .map((url) => fileURLToPath(url))
      .filter((path) => path !== PRELOAD);
    expect(loaded).toEqual([
      `${REPO_ROOT}packages/agent/bin/rbtk-runner.js`,
      `${REPO_ROOT}packages/agent/dist/bundle/rbtk-runner.js`,
    ]);
  });
});
