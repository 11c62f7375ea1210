import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fileLines, type FileLine } from '../src/jobs/file-lines.js';
import { tempDir } from './helpers/fixtures.js';

async function all(path: string, start?: number): Promise<FileLine[]> {
  const out: FileLine[] = [];
  for await (const line of fileLines(path, start)) out.push(line);
  return out;
}

describe('fileLines', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  it('gives each line with the byte positions where it and the next one start, the torn last one too', async () => {
    const path = join(dir, 'log.jsonl');
    await writeFile(path, 'héllo\n\nwörld €\ntorn');
    const lines = await all(path);
    expect(lines).toEqual([
      { text: 'héllo', at: 0, end: 7 },
      { text: '', at: 7, end: 8 },
      { text: 'wörld €', at: 8, end: 19 },
      { text: 'torn', at: 19, end: 23 },
    ]);
    // Starting at a line's position gives the same lines from there on.
    expect(await all(path, 8)).toEqual(lines.slice(2));
    expect(await all(path, 23)).toEqual([]);
  });

  it('keeps lines whole across reads, and positions exact after bytes that are not UTF-8', async () => {
    const path = join(dir, 'big.jsonl');
    // Lines longer than one read (256 KiB), and an invalid byte that decodes to a 3-byte U+FFFD.
    const long = 'x'.repeat(300_000);
    const bytes = Buffer.concat([Buffer.from(`${long}\n`), Buffer.from([0xff, 0x0a]), Buffer.from(`${long}y\nlast\n`)]);
    await writeFile(path, bytes);
    const lines = await all(path);
    expect(lines.map((l) => l.text.length)).toEqual([300_000, 1, 300_001, 4]);
    expect(lines[1]!.text).toBe('\uFFFD');
    expect(lines.map((l) => l.at)).toEqual([0, 300_001, 300_003, 600_005]);
    expect(lines.at(-1)!.end).toBe(bytes.length);
    // Each position points at its line's first byte in the file.
    for (const l of lines) expect(bytes.subarray(l.at, l.end - 1).toString('utf8')).toBe(l.text);
  });
});
