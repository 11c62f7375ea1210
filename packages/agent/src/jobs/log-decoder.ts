import { StringDecoder } from 'node:string_decoder';
import type { LogStream } from '@rbtk/protocol/runner';

/** Largest `data` of one log frame, in UTF-8 bytes. */
export const MAX_LOG_CHUNK_BYTES = 64 * 1024;

export interface DecodedChunk {
  stream: LogStream;
  data: string;
}

/**
 * Turns raw output bytes into log text. One StringDecoder per stream keeps a
 * multibyte character that arrives split across two reads whole (it waits for
 * the rest); long text is cut into pieces of at most 64 KiB, never inside a
 * character. Offsets are then counted in UTF-8 bytes of what is emitted.
 */
export class LogDecoder {
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };

  write(stream: LogStream, bytes: Buffer): DecodedChunk[] {
    return split(stream, this.decoders[stream].write(bytes));
  }

  /** What is left at the end (an incomplete character becomes U+FFFD). */
  end(): DecodedChunk[] {
    return [...split('stdout', this.decoders.stdout.end()), ...split('stderr', this.decoders.stderr.end())];
  }
}

function split(stream: LogStream, text: string): DecodedChunk[] {
  if (text === '') return [];
  if (Buffer.byteLength(text) <= MAX_LOG_CHUNK_BYTES) return [{ stream, data: text }];
  const chunks: DecodedChunk[] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < text.length; ) {
    const code = text.codePointAt(i)!;
    const units = code > 0xffff ? 2 : 1;
    const size = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    if (bytes + size > MAX_LOG_CHUNK_BYTES) {
      chunks.push({ stream, data: text.slice(start, i) });
      start = i;
      bytes = 0;
    }
    bytes += size;
    i += units;
  }
  chunks.push({ stream, data: text.slice(start) });
  return chunks;
}
