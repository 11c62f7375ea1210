import { describe, expect, it } from 'vitest';
import { LogDecoder, MAX_LOG_CHUNK_BYTES } from '../src/jobs/log-decoder.js';

describe('LogDecoder', () => {
  it('keeps a multibyte character whole when its bytes arrive in two reads', () => {
    const decoder = new LogDecoder();
    const bytes = Buffer.from('é€😀', 'utf8'); // 2 + 3 + 4 bytes
    const out = [
      ...decoder.write('stdout', bytes.subarray(0, 1)),
      ...decoder.write('stdout', bytes.subarray(1, 3)),
      ...decoder.write('stdout', bytes.subarray(3, 7)),
      ...decoder.write('stdout', bytes.subarray(7)),
    ];
    expect(out.map((c) => c.data).join('')).toBe('é€😀');
    expect(out.every((c) => !c.data.includes('\uFFFD'))).toBe(true);
  });

  it('decodes stdout and stderr apart: half a character on one does not spoil the other', () => {
    const decoder = new LogDecoder();
    const euro = Buffer.from('€', 'utf8');
    expect(decoder.write('stdout', euro.subarray(0, 2))).toEqual([]);
    expect(decoder.write('stderr', Buffer.from('err\n'))).toEqual([{ stream: 'stderr', data: 'err\n' }]);
    expect(decoder.write('stdout', euro.subarray(2))).toEqual([{ stream: 'stdout', data: '€' }]);
  });

  it('cuts long output into pieces of at most 64 KiB without splitting a character', () => {
    const decoder = new LogDecoder();
    const text = 'a' + '€'.repeat(50_000); // 150,001 bytes; the 3-byte characters straddle every 64 KiB line
    const chunks = decoder.write('stdout', Buffer.from(text));
    expect(chunks.length).toBe(3);
    for (const c of chunks) expect(Buffer.byteLength(c.data)).toBeLessThanOrEqual(MAX_LOG_CHUNK_BYTES);
    expect(chunks.map((c) => c.data).join('')).toBe(text);
  });

  it('ends an incomplete character as U+FFFD rather than dropping it', () => {
    const decoder = new LogDecoder();
    decoder.write('stderr', Buffer.from('€').subarray(0, 2));
    expect(decoder.end()).toEqual([{ stream: 'stderr', data: '\uFFFD' }]);
  });
});
