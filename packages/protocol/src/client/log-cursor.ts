import type { JobLog } from '../job-messages.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export type CursorVerdict =
  /** New bytes, in order: deliver this chunk (trimmed of bytes already delivered). */
  | { kind: 'deliver'; log: JobLog }
  /** Nothing new: every byte was delivered before. */
  | { kind: 'duplicate' }
  /** Bytes past the cursor with a hole before them: re-watch from `offset`. */
  | { kind: 'gap'; offset: number };

/**
 * Where a watch is in its job's log, so each byte is delivered once and in order across
 * reconnects. Offsets count UTF-8 bytes of the current attempt's log; a new attempt
 * starts its log again at 0.
 */
export class LogCursor {
  /** The attempt whose log `next` counts in, once a `job` event said. */
  attempt: number | undefined;
  /** The first byte not yet delivered. */
  next: number;

  constructor(fromOffset = 0) {
    this.next = fromOffset;
  }

  /** A `job` event: a newer attempt has a new log, which is read from its start. */
  onAttempt(attempt: number): void {
    if (this.attempt !== undefined && attempt > this.attempt) this.next = 0;
    this.attempt = Math.max(attempt, this.attempt ?? attempt);
  }

  /** Decides what to do with a log event and moves the cursor past what it delivers. */
  onLog(log: JobLog): CursorVerdict {
    if (log.offset > this.next) return { kind: 'gap', offset: this.next };
    const bytes = encoder.encode(log.data);
    const end = log.offset + bytes.length;
    if (end <= this.next) return { kind: 'duplicate' };
    const skip = this.next - log.offset;
    this.next = end;
    if (skip === 0) return { kind: 'deliver', log };
    // Overlap: keep only the new bytes. The server cuts chunks at character boundaries,
    // so a resumed watch never lands inside a character.
    return { kind: 'deliver', log: { ...log, offset: log.offset + skip, data: decoder.decode(bytes.subarray(skip)) } };
  }
}
