import { describe, expect, it } from 'vitest';
import { formatMemory, parseMemory } from '../src/memory.js';
import { DockerExecutorSpec, JobSpec } from '../src/schemas/job.js';

const MiB = 2 ** 20;

describe('parseMemory (Docker\'s --memory units, binary)', () => {
  it.each([
    ['8m', 8 * MiB],
    ['512m', 512 * MiB],
    ['512M', 512 * MiB],
    ['512MiB', 512 * MiB],
    ['512mb', 512 * MiB],
    ['512 m', 512 * MiB],
    ['1.5g', 1.5 * 2 ** 30],
    ['2G', 2 * 2 ** 30],
    ['64k', 64 * 1024],
    ['1t', 2 ** 40],
    ['1048576', MiB],
    ['100b', 100],
  ])('%s is %d bytes', (text, bytes) => {
    expect(parseMemory(text)).toBe(bytes);
  });

  it('takes a number as bytes', () => {
    expect(parseMemory(536_870_912)).toBe(512 * MiB);
  });

  it.each(['', 'lots', '-1m', '1x', 'm', '1 g b', '1e9', '512 mega'])('refuses %j and says how to write it', (text) => {
    expect(() => parseMemory(text)).toThrow(/write it like 512m, 2g or a number of bytes/);
  });

  it.each([1.5, -1, Number.NaN])('refuses the number %d', (n) => {
    expect(() => parseMemory(n)).toThrow(RangeError);
  });
});

describe('formatMemory', () => {
  it.each([
    [8 * MiB, '8 MiB'],
    [512 * MiB, '512 MiB'],
    [1.5 * 2 ** 30, '1.5 GiB'],
    [2 ** 40, '1 TiB'],
    [1536, '1.5 KiB'],
    [100, '100 B'],
  ])('%d bytes reads %s', (bytes, text) => {
    expect(formatMemory(bytes)).toBe(text);
  });
});

describe('the docker executor spec\'s memory', () => {
  const docker = (memory: unknown) => ({ type: 'docker', image: 'busybox', memory });
  const issues = (memory: unknown) => {
    const r = JobSpec.safeParse({ pool: 'p', executor: docker(memory) });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('is optional and kept as given (string or bytes)', () => {
    expect(DockerExecutorSpec.parse({ type: 'docker', image: 'busybox' }).memory).toBeUndefined();
    expect(DockerExecutorSpec.parse(docker('512m')).memory).toBe('512m');
    expect(DockerExecutorSpec.parse(docker(8 * MiB)).memory).toBe(8 * MiB);
  });

  it('refuses bad values with a message naming the field', () => {
    expect(issues('lots')).toEqual(['executor.memory: invalid memory size "lots": write it like 512m, 2g or a number of bytes']);
    expect(issues('4m')).toEqual(["executor.memory: at least 6m (Docker's smallest memory limit); got 4 MiB"]);
    expect(issues(1000)).toEqual(["executor.memory: at least 6m (Docker's smallest memory limit); got 1000 B"]);
    expect(issues('2p')).toEqual(['executor.memory: at most 1p']);
    expect(issues(true)).toHaveLength(1);
  });

  it('is not a field of the shell executor', () => {
    expect(JobSpec.safeParse({ pool: 'p', executor: { type: 'shell', command: ['true'], memory: '1g' } }).success).toBe(false);
  });
});
