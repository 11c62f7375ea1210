import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spool } from '../src/jobs/spool.js';
import { tempDir } from './helpers/fixtures.js';

describe('Spool', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  const meta = (jobId: string, attempt = 1) => ({ jobId, attempt, executor: 'shell' as const, acceptedAt: new Date().toISOString() });

  it('appends log records with UTF-8 byte offsets and reloads them after a restart', async () => {
    const spool = new Spool(join(dir, 'spool'));
    const a = await spool.create(meta('job1'));
    a.append([{ stream: 'stdout', data: 'héllo\n' }]);
    a.append([{ stream: 'stderr', data: 'oops\n' }]);
    await a.idle();
    expect(a.records.map((r) => [r.offset, r.stream, r.bytes])).toEqual([
      [0, 'stdout', 7],
      [7, 'stderr', 5],
    ]);
    expect(a.durableBytes).toBe(12);

    const [again] = await new Spool(join(dir, 'spool')).load();
    expect(again!.meta).toMatchObject({ jobId: 'job1', attempt: 1, executor: 'shell' });
    expect(again!.records.map((r) => r.data).join('')).toBe('héllo\noops\n');
    expect(again!.logBytes).toBe(12);
    expect(again!.result).toBeUndefined();
  });

  it('trims acknowledged records from memory and disk, keeping the offsets of the rest', async () => {
    const spool = new Spool(join(dir, 'spool'), { trimEveryBytes: 0 });
    const a = await spool.create(meta('job2'));
    a.append([{ stream: 'stdout', data: 'one\n' }, { stream: 'stdout', data: 'two\n' }, { stream: 'stdout', data: 'three\n' }]);
    await a.idle();
    a.ack(8);
    await a.idle();
    expect(a.records.map((r) => r.data)).toEqual(['three\n']);
    const text = await readFile(join(a.dir, 'log.jsonl'), 'utf8');
    expect(text).not.toContain('one');
    const [again] = await new Spool(join(dir, 'spool'), { trimEveryBytes: 0 }).load();
    expect(again!.acked).toBe(8);
    expect(again!.records.map((r) => [r.offset, r.data])).toEqual([[8, 'three\n']]);
    expect(again!.logBytes).toBe(14);

    a.ack(14);
    await a.idle();
    const [empty] = await new Spool(join(dir, 'spool')).load();
    expect(empty!.records).toEqual([]);
    expect(empty!.logBytes).toBe(14);
  });

  it('rewrites the log file only once enough bytes are acknowledged', async () => {
    const spool = new Spool(join(dir, 'spool'), { trimEveryBytes: 10 });
    const a = await spool.create(meta('job4'));
    a.append([{ stream: 'stdout', data: 'aaaa\n' }, { stream: 'stdout', data: 'bbbb\n' }, { stream: 'stdout', data: 'cccc\n' }]);
    await a.idle();
    a.ack(5);
    await a.idle();
    expect(a.records).toHaveLength(2);
    expect(await readFile(join(a.dir, 'log.jsonl'), 'utf8')).toContain('aaaa');
    a.ack(10);
    await a.idle();
    expect(await readFile(join(a.dir, 'log.jsonl'), 'utf8')).not.toContain('bbbb');
  });

  it('writes the result after the log, and deletes the attempt on remove', async () => {
    const spool = new Spool(join(dir, 'spool'));
    const a = await spool.create(meta('job/3', 2));
    a.append([{ stream: 'stdout', data: 'x' }]);
    const result = await a.finish({ outcome: 'failed', exitCode: 3, message: 'exited with code 3' });
    expect(result).toMatchObject({ outcome: 'failed', exitCode: 3, logBytes: 1 });
    const [again] = await new Spool(join(dir, 'spool')).load();
    expect(again!.meta.jobId).toBe('job/3');
    expect(again!.result).toMatchObject({ outcome: 'failed', exitCode: 3, logBytes: 1 });
    await a.remove();
    expect(existsSync(a.dir)).toBe(false);
    expect(await new Spool(join(dir, 'spool')).load()).toEqual([]);
  });
});
