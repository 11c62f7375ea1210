import type { RunnerMessage } from '@rbtk/protocol/runner';
import type { HeldAttempt } from './held-attempt.js';

/**
 * A new connection: the coordinator may have missed anything not acknowledged, so start again from there.
 * `started` too: hello says which attempts are held, not whether they run, and a `started` lost with the
 * old socket would leave the job `assigned` (outside the timeout backstop) while it runs. It is idempotent.
 */
export function resetForConnection(h: HeldAttempt): void {
  const s = h.spooled;
  h.sentUpTo = s ? (s.records[0]?.offset ?? s.spilledFrom ?? s.logBytes) : 0;
  h.resultSent = false;
  h.startedSent = false;
}

/**
 * Sends what the coordinator has not seen yet, in order: accept, started, the
 * log records written from `sentUpTo`, then the result once every log record
 * before it went out. Stops at the first frame the socket refuses; the next
 * connection starts over from the last acknowledgement.
 */
export function flushAttempt(h: HeldAttempt, send: (frame: RunnerMessage) => boolean): void {
  const s = h.spooled;
  if (!s) return;
  const { jobId, attempt } = h;
  if (!h.acceptSent) {
    if (!send({ type: 'accept', jobId, attempt })) return;
    h.acceptSent = true;
  }
  if (h.hasStarted && !h.startedSent) {
    if (!send({ type: 'started', jobId, attempt })) return;
    h.startedSent = true;
  }
  for (const r of s.records) {
    if (r.offset < h.sentUpTo) continue;
    if (r.offset >= s.writtenBytes) return;
    if (!send({ type: 'log', jobId, attempt, offset: r.offset, stream: r.stream, data: r.data })) return;
    h.sentUpTo = r.offset + r.bytes;
  }
  // Every record held went out (the loop returns at the first that cannot). If that is short of the
  // result's logBytes, the spool lost the rest (a restart could not read past a hole that a disk error
  // left, see Spool.load): the result goes without them, rather than never.
  // Records on disk only come back into memory as acknowledgements free room; the result waits for them.
  const result = s.result;
  if (!result || h.resultSent || s.spilledFrom !== undefined) return;
  h.resultSent = send({
    type: 'result',
    jobId,
    attempt,
    outcome: result.outcome,
    exitCode: result.exitCode,
    ...(result.message !== undefined ? { message: result.message.slice(0, 8192) } : {}),
    logBytes: result.logBytes,
  });
}
