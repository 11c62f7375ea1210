import { isTerminalJobState, type SubmitterEvent } from '@rbtk/protocol';
import type { JobRecord } from '../store/job-rows.js';
import { toJob, toLogChunk } from '../wire.js';
import type { JobBusEvent } from './job-bus.js';
import type { JobService } from './job-service.js';

/** Log chunks read from the store at a time (a watch's backlog, a REST page). */
export const LOG_PAGE_CHUNKS = 128;

/**
 * One watch of one job: the job as it is now, then its (current attempt's)
 * log from `fromOffset`, then live state changes and log chunks, each once
 * and in order; it ends by itself after the terminal state. Live events that
 * arrive while the backlog is read are held back and deduplicated by job
 * version and log offset, so nothing is lost or repeated across the seam.
 * The backlog is read a page at a time, each after the socket has room for
 * it (`room`), so a long log is never all in memory at once.
 */
export class JobWatch {
  private held: JobBusEvent[] | null = [];
  private unsubscribe: (() => void) | null = null;
  private version = -1;
  private attempt = 0;
  private nextOffset: number;
  private ended = false;

  constructor(
    private readonly jobs: JobService,
    private readonly jobId: string,
    fromOffset: number,
    /** The attempt `fromOffset` counts in, when the watcher knows it: another attempt's log starts at 0. */
    private readonly fromAttempt: number | undefined,
    private readonly send: (event: SubmitterEvent) => void,
    private readonly onEnd: () => void,
    /** Resolves once the watcher's socket can take more (between backlog pages). */
    private readonly room: () => Promise<void> = async () => {},
  ) {
    this.nextOffset = fromOffset;
  }

  async start(): Promise<void> {
    this.unsubscribe = this.jobs.bus.subscribe(this.jobId, (e) => (this.held ? this.held.push(e) : this.deliver(e)));
    const job = await this.jobs.deps.store.jobs.get(this.jobId);
    if (!job || this.ended) return this.end();
    // The watcher's offset was in an attempt that is over (it retried meanwhile): this one's log from its start.
    if (this.fromAttempt !== undefined && this.fromAttempt !== job.attempt) this.nextOffset = 0;
    this.sendJob(job);
    for (let from = this.nextOffset; job.attempt > 0; ) {
      const page = await this.jobs.deps.store.jobs.logs(this.jobId, job.attempt, from, LOG_PAGE_CHUNKS);
      for (const row of page) {
        if (this.ended) return;
        this.sendLog(row.attempt, row.offset, row.size, row);
      }
      if (page.length < LOG_PAGE_CHUNKS) break;
      from = page.at(-1)!.offset + page.at(-1)!.size;
      await this.room();
      if (this.ended) return;
    }
    const held = this.held ?? [];
    this.held = null;
    for (const e of held) this.deliver(e);
    if (isTerminalJobState(job.state)) this.end();
  }

  /** Stops the watch (unwatch, socket closed); safe to call twice. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.unsubscribe?.();
    this.onEnd();
  }

  private deliver(e: JobBusEvent): void {
    if (this.ended) return;
    if (e.kind === 'log') {
      this.sendLog(e.attempt, e.offset, Buffer.byteLength(e.data, 'utf8'), e);
      return;
    }
    if (e.job.version <= this.version) return;
    this.sendJob(e.job);
    if (isTerminalJobState(e.job.state)) this.end();
  }

  private sendJob(job: JobRecord): void {
    this.version = job.version;
    if (job.attempt !== this.attempt) {
      // A new attempt starts a new log, from its first byte.
      if (this.attempt !== 0) this.nextOffset = 0;
      this.attempt = job.attempt;
    }
    this.send({ type: 'job', job: toJob(job) });
  }

  private sendLog(
    attempt: number,
    offset: number,
    size: number,
    chunk: { jobId: string; stream: 'stdout' | 'stderr'; data: string },
  ): void {
    if (attempt !== this.attempt || offset + size <= this.nextOffset) return;
    const piece = toLogChunk({ ...chunk, attempt, offset, size }, this.nextOffset);
    this.nextOffset = offset + size;
    this.send({ type: 'log', ...piece });
  }
}
