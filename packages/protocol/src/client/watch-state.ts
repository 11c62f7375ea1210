import type WebSocket from 'ws';
import type { JobEvent, JobLog } from '../job-messages.js';
import { isTerminalJobState } from '../schemas/job.js';
import { EventQueue } from './event-queue.js';
import { LogCursor } from './log-cursor.js';

export type WatchEvent = JobEvent | JobLog;

/**
 * One open watch of the submitter client: what it has delivered, and what to do with the
 * next event. The client does the I/O; this decides, so the rules read in one place.
 */
export class WatchState {
  readonly cursor: LogCursor;
  readonly queue = new EventQueue<WatchEvent>();
  /** Re-watching after a gap: log events past the cursor belong to the old subscription. */
  resyncing = false;
  /** The connection the last watch request went on. */
  sentOn: WebSocket | undefined;
  /** state/attempt of the last job event delivered. */
  private lastState: string | undefined;
  /** The job has ended with this many log bytes: end once they are delivered. */
  private drainTo: number | undefined;

  constructor(
    readonly jobId: string,
    fromOffset: number,
  ) {
    this.cursor = new LogCursor(fromOffset);
  }

  /**
   * A job event, delivered once per state change (a re-sent watch starts with the current
   * state again). On a terminal state: `end`, or `drain` when log bytes are still to come —
   * a watch that starts on an ended job gets the state first and the log after it.
   */
  onJob(event: JobEvent): 'continue' | 'end' | 'drain' {
    const { job } = event;
    this.cursor.onAttempt(job.attempt);
    const key = `${job.state}/${job.attempt}`;
    if (key !== this.lastState) this.queue.push(event);
    this.lastState = key;
    if (!isTerminalJobState(job.state)) return 'continue';
    if (this.cursor.next >= job.logBytes) return 'end';
    this.drainTo = job.logBytes;
    return 'drain';
  }

  /** A log event: delivered once and in order; `end` when it completes a drained log, `resync` on a gap. */
  onLog(event: JobLog): 'continue' | 'end' | 'resync' {
    const verdict = this.cursor.onLog(event);
    if (verdict.kind === 'deliver') {
      this.queue.push(verdict.log);
      return this.drainTo !== undefined && this.cursor.next >= this.drainTo ? 'end' : 'continue';
    }
    if (verdict.kind === 'gap' && !this.resyncing) {
      this.resyncing = true;
      return 'resync';
    }
    return 'continue';
  }
}
