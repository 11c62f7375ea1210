import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunnerMessage } from '@rbtk/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { HeldAttempt } from '../src/jobs/held-attempt.js';
import { flushAttempt } from '../src/jobs/send-attempt.js';
import { Spool, type SpooledAttempt } from '../src/jobs/spool.js';
import { tempDir } from './helpers/fixtures.js';

/** What flushAttempt sends for the attempt on a fresh connection. */
function sentOnConnect(spooled: SpooledAttempt): RunnerMessage[] {
  const h: HeldAttempt = {
    jobId: spooled.meta.jobId,
    attempt: spooled.meta.attempt,
    state: spooled.result ? 'finished' : 'running',
    spooled,
    hasStarted: true,
    acceptSent: true,
    startedSent: true,
    sentUpTo: spooled.records[0]?.offset ?? spooled.spilledFrom ?? spooled.logBytes,
    resultSent: false,
  };
  const sent: RunnerMessage[] = [];
  flushAttempt(h, (frame) => (sent.push(frame), true));
  return sent;
}

/**
 * Plays the coordinator for `rounds` connections (or until the result): takes what each sends,
 * checks it continues where the last ended, acknowledges it, and lets the spool read the rest back.
 */
async function drain(a: SpooledAttempt, memoryBytes: number, rounds = 1_000): Promise<{ got: string[]; result?: RunnerMessage }> {
  const got: string[] = [];
  let result: RunnerMessage | undefined;
  let offset = a.acked;
  for (let round = 0; !result && round < rounds; round++) {
    for (const f of sentOnConnect(a)) {
      if (f.type === 'log') {
        expect(f.offset).toBe(offset);
        got.push(f.data);
        offset += Buffer.byteLength(f.data);
      } else if (f.type === 'result') result = f;
    }
    a.ack(offset);
    await a.idle();
    expect(a.memoryBytes).toBeLessThanOrEqual(memoryBytes);
  }
  return { got, result };
}

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
    expect(a.writtenBytes).toBe(12);

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
    expect(await readdir(join(dir, 'spool'))).toEqual([]);
    expect(await new Spool(join(dir, 'spool')).load()).toEqual([]);
  });

  it('sends the log from memory when a write fails, says so once, and heals the file at the next trim', async () => {
    const spool = new Spool(join(dir, 'spool'), { trimEveryBytes: 1 });
    const a = await spool.create(meta('full-disk'));
    const errors: string[] = [];
    a.onWriteError = (err) => errors.push((err as NodeJS.ErrnoException).code ?? err.message);
    // The log file cannot be written: a directory stands in its place (EISDIR, as real as ENOSPC here).
    await mkdir(join(a.dir, 'log.jsonl'));
    a.append([{ stream: 'stdout', data: 'lost on disk\n' }]);
    a.append([{ stream: 'stderr', data: 'still sent\n' }]);
    await a.finish({ outcome: 'succeeded', exitCode: 0 });
    expect(errors).toEqual(['EISDIR']);
    expect(a.writtenBytes).toBe(24);
    expect(sentOnConnect(a).map((f) => f.type)).toEqual(['log', 'log', 'result']);

    // Space again: the trim after an ack rewrites the file from the records held, so a restart finds them.
    await rmdir(join(a.dir, 'log.jsonl'));
    a.ack(13);
    await a.idle();
    const [again] = await new Spool(join(dir, 'spool')).load();
    expect(again!.records.map((r) => r.data)).toEqual(['still sent\n']);
    expect(again!.logBytes).toBe(24);
  });

  it('keeps at most memoryBytes of unacknowledged log in memory, and sends every byte in order as acks come', async () => {
    const spool = new Spool(join(dir, 'spool'), { memoryBytes: 100, trimEveryBytes: 64 });
    const a = await spool.create(meta('chatty'));
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i} ${'x'.repeat(i % 7)}\n`);
    // The coordinator is down: nothing is acknowledged while the job writes 20 times the bound.
    for (const l of lines) a.append([{ stream: l.length % 2 ? 'stderr' : 'stdout', data: l }]);
    await a.finish({ outcome: 'succeeded', exitCode: 0 });
    await a.idle();
    expect(a.logBytes).toBeGreaterThan(2_000);
    expect(a.memoryBytes).toBeLessThanOrEqual(100);
    expect(a.records.reduce((n, r) => n + r.bytes, 0)).toBe(a.memoryBytes);

    // A restart keeps the bound too (loaded from a copy: draining the two attempts trims their files).
    await cp(join(dir, 'spool'), join(dir, 'restarted'), { recursive: true });
    const [reloaded] = await new Spool(join(dir, 'restarted'), { memoryBytes: 100 }).load();
    expect(reloaded!.memoryBytes).toBeLessThanOrEqual(100);
    expect(reloaded!.spilledFrom).toBe(reloaded!.records.at(-1)!.offset + reloaded!.records.at(-1)!.bytes);

    // It comes back, in the running attempt and in the one a restart loaded: each connection sends what
    // memory holds, the coordinator acks, the rest is read back (from where the last read stopped).
    for (const attempt of [a, reloaded!]) {
      const { got, result } = await drain(attempt, 100);
      expect(got.join('')).toBe(lines.join(''));
      expect(result).toMatchObject({ type: 'result', logBytes: a.logBytes });
    }
  });

  it('reads the spilled log back from the top when the file is not as the attempt left it', async () => {
    const spool = new Spool(join(dir, 'spool'), { memoryBytes: 20 });
    const a = await spool.create(meta('rewritten'));
    const lines = Array.from({ length: 12 }, (_, i) => `line ${String(i).padStart(2, '0')}\n`); // 8 bytes each
    for (const l of lines) a.append([{ stream: 'stdout', data: l }]);
    await a.idle();
    // Two rounds: the second read back starts where the first one stopped.
    const first = await drain(a, 20, 2);
    expect(first.got).toEqual(lines.slice(0, 4));
    // The file is rewritten shorter (an operator's copy, another tool): the saved position points past
    // what is there, so the read starts again from the top and still finds every record by its offset.
    const rest = lines.slice(4).map((d, i) => JSON.stringify({ o: (4 + i) * 8, s: 'stdout', d })).join('\n');
    await writeFile(join(a.dir, 'log.jsonl'), `${rest}\n`);
    await a.finish({ outcome: 'succeeded', exitCode: 0 });
    const second = await drain(a, 20);
    expect(second.got).toEqual(lines.slice(4));
    expect(second.result).toMatchObject({ type: 'result', logBytes: 96 });
  });

  it('keeps a spilled record whose write failed in memory, and sends it in its place', async () => {
    const spool = new Spool(join(dir, 'spool'), { memoryBytes: 10 });
    const a = await spool.create(meta('spilled-full-disk'));
    a.append([{ stream: 'stdout', data: 'in memory\n' }]);
    a.append([{ stream: 'stdout', data: 'on disk\n' }]);
    await a.idle();
    await rm(join(a.dir, 'log.jsonl'));
    await mkdir(join(a.dir, 'log.jsonl'));
    a.append([{ stream: 'stdout', data: 'nowhere but memory\n' }]);
    await a.idle();
    await rmdir(join(a.dir, 'log.jsonl'));
    await writeFile(join(a.dir, 'log.jsonl'), '{"o":0,"s":"stdout","d":"in memory\\n"}\n{"o":10,"s":"stdout","d":"on disk\\n"}\n');
    await a.finish({ outcome: 'succeeded', exitCode: 0 });
    const got: string[] = [];
    let offset = 0;
    for (let round = 0; offset < a.logBytes && round < 10; round++) {
      for (const f of sentOnConnect(a)) if (f.type === 'log' && f.offset === offset) (got.push(f.data), (offset += Buffer.byteLength(f.data)));
      a.ack(offset);
      await a.idle();
    }
    expect(got).toEqual(['in memory\n', 'on disk\n', 'nowhere but memory\n']);
  });

  it('sends the result after a restart even when a hole in the log file lost its tail', async () => {
    const attemptDir = join(dir, 'spool', 'holed-1');
    await mkdir(attemptDir, { recursive: true });
    await writeFile(join(attemptDir, 'meta.json'), JSON.stringify(meta('holed')));
    // Bytes 5–9 never reached the disk (a failed append); the record after them did.
    await writeFile(join(attemptDir, 'log.jsonl'), '{"o":0,"s":"stdout","d":"abcd\\n"}\n{"o":10,"s":"stdout","d":"klmn\\n"}\n');
    await writeFile(join(attemptDir, 'result.json'), JSON.stringify({ outcome: 'succeeded', exitCode: 0, logBytes: 15, finishedAt: new Date().toISOString() }));
    const [a] = await new Spool(join(dir, 'spool')).load();
    expect(a!.logBytes).toBe(5);
    expect(sentOnConnect(a!)).toEqual([
      { type: 'log', jobId: 'holed', attempt: 1, offset: 0, stream: 'stdout', data: 'abcd\n' },
      { type: 'result', jobId: 'holed', attempt: 1, outcome: 'succeeded', exitCode: 0, logBytes: 15 },
    ]);
  });

  it('finishes a removal that a kill interrupted, instead of reporting the attempt again', async () => {
    const doomed = join(dir, 'spool', 'gone-1.removing');
    await mkdir(doomed, { recursive: true });
    await writeFile(join(doomed, 'meta.json'), JSON.stringify({ ...meta('gone'), pgid: 999_999 }));
    expect(await new Spool(join(dir, 'spool')).load()).toEqual([]);
    expect(existsSync(doomed)).toBe(false);
  });
});
