import { describe, expect, it } from 'vitest';
import { JobSpec } from '@rbtk/protocol';
import { buildJobSpec, parseMemoryFlag } from '../src/cli/rbtk/job-spec.js';
import { rbtk } from './cli-run.js';

/* `rbtk job submit --memory`: the docker container's memory limit, checked before anything is sent. */

describe('rbtk job submit --memory', () => {
  it('is documented in job submit --help', async () => {
    const res = await rbtk(['job', 'submit', '--help']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/--memory <size>\s+docker memory limit, e\.g\. 512m or 2g/);
  });

  it('becomes the docker executor\'s memory, kept as typed, and passes the protocol', () => {
    const spec = buildJobSpec({ pool: 'ci', image: 'busybox', memory: parseMemoryFlag('512m') }, ['sh', '-c', 'true']);
    expect(spec.executor).toMatchObject({ type: 'docker', image: 'busybox', memory: '512m' });
    expect(JobSpec.parse(spec).executor).toMatchObject({ memory: '512m' });
    // Without the flag the spec has no memory field at all (no limit).
    expect(buildJobSpec({ pool: 'ci', image: 'busybox' }, []).executor).not.toHaveProperty('memory');
  });

  it.each([
    ['a size that is no size', ['--image', 'busybox', '--memory', 'lots'], /invalid memory size "lots": write it like 512m, 2g or a number of bytes/],
    ['less than Docker allows', ['--image', 'busybox', '--memory', '4m'], /at least 6m \(Docker's smallest memory limit\); got 4 MiB/],
    ['a shell job', ['--memory', '512m'], /--memory applies to docker jobs: add --image IMAGE/],
  ])('refuses %s with exit 2 and says why', async (_what, flags, message) => {
    const res = await rbtk(['job', 'submit', '--pool', 'ci', ...flags, '--', 'true'], { env: { RBTK_URL: 'http://127.0.0.1:9', RBTK_TOKEN: 'x' } });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(message);
  });
});
