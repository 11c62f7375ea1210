import { open } from 'node:fs/promises';

/** Bytes read at a time. */
const READ_BYTES = 256 * 1024;

export interface FileLine {
  /** The line without its newline, decoded as UTF-8. */
  text: string;
  /** The byte position in the file where the line starts. */
  at: number;
  /** Where the line after it starts (past the newline). */
  end: number;
}

/**
 * The lines of a file from byte `start`, each with the position it starts at,
 * so a later read can begin at any of them instead of at the top of the file;
 * the last one also without a newline after it (a torn append). Positions are
 * counted in bytes as read, not re-encoded from the text, so a line that is
 * not valid UTF-8 does not shift the ones after it.
 */
export async function* fileLines(path: string, start = 0): AsyncGenerator<FileLine> {
  const file = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(READ_BYTES);
    /** The start of a line that an earlier read cut. */
    let carry: Buffer | null = null;
    let lineAt = start;
    for (let pos = start; ; ) {
      const { bytesRead } = await file.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      let from = 0;
      for (let nl = buf.indexOf(10, from); nl !== -1 && nl < bytesRead; nl = buf.indexOf(10, from)) {
        const piece = buf.subarray(from, nl);
        const bytes: Buffer = carry ? Buffer.concat([carry, piece]) : piece;
        carry = null;
        // Decoded before yielding: the buffer is reused by the next read.
        const end = lineAt + bytes.length + 1;
        yield { text: bytes.toString('utf8'), at: lineAt, end };
        lineAt = end;
        from = nl + 1;
      }
      if (from < bytesRead) {
        const rest = buf.subarray(from, bytesRead);
        carry = carry ? Buffer.concat([carry, rest]) : Buffer.from(rest);
      }
    }
    if (carry) yield { text: carry.toString('utf8'), at: lineAt, end: lineAt + carry.length };
  } finally {
    await file.close();
  }
}
