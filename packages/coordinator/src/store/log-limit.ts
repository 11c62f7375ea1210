/*
 * The per-attempt log limit (--max-log-bytes). Bytes past it are acknowledged
 * to the runner, so it frees its spool, but not stored; the attempt's log ends
 * with one marker chunk on stderr that says where it was cut. The marker is the
 * state: an attempt whose log ends with it takes no more bytes, whatever the
 * limit is after a restart.
 */

const MARKER_HEAD = '\n[rbtk] log truncated at ';

/** The marker chunk's text: `offset` is where it starts (the bytes kept), `limit` the limit that cut it. */
export function truncationMarker(offset: number, limit: number): string {
  return `${MARKER_HEAD}${offset} bytes: this attempt's output past the coordinator's limit of ${limit} bytes (--max-log-bytes) was not stored\n`;
}

/** Whether a chunk stored at `offset` is the marker (its offset is in its text, so job output cannot pass for it by chance). */
export function isTruncationMarker(offset: number, data: string): boolean {
  return data.startsWith(`${MARKER_HEAD}${offset} bytes: `);
}

/** The longest prefix of `data` of at most `maxBytes` UTF-8 bytes that ends on a character boundary. */
export function utf8Prefix(data: string, maxBytes: number): string {
  const bytes = Buffer.from(data, 'utf8');
  if (bytes.length <= maxBytes) return data;
  let end = Math.max(0, maxBytes);
  // Back off continuation bytes (10xxxxxx): a character cut in two cannot be stored as text.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}
