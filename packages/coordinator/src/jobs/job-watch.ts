import { isTerminalJobState, type SubmitterEvent } from '@rbtk/protocol';
import type { JobRecord } from '../store/job-rows.js';
import { toJob, toLogChunk } from '../wire.js';
import type { JobBusEvent } from './job-bus.js';
import type { JobService } from './job-service.js';

/** Log chunks in one REST page (GET /v1/jobs/:id/logs). */
export const LOG_PAGE_CHUNKS = 128;
/** Log chunks a watch reads from the store at a time: 1 MiB of rbtk-runner's chunks (64 KiB at most). */
export const WATCH_PAGE_CHUNKS = 16;

/**
 * One watch of one job: the job as it is now, then its (current attempt's)
 * log from `fromOffset`, then live state changes and log chunks, each once
 * and in order; it ends by itself after the terminal state. Live events that
 * arrive while the backlog is read are held back and deduplicated by job
 * version and log offset, so nothing is lost or repeated across the seam.
 * The backlog is read a page at a time, each after the socket has room for
 * it (`room`), so a long log is never all in memory at once.
 *
 * A terminal state the coordinator decided itself (LogTails) is held back
 * while the attempt's runner may still send its last log bytes: those are
 * streamed, then the state (its logBytes counting them), then the watch ends.
 * Clients end a watch at the terminal state, so it must come last.
 */
export class JobWatch {
  /** Live events while the backlog is read, each with whether its attempt's log tail was open as it was published. */
  private held: [JobBusEvent, boolean][] | null = [];
  private unsubscribe: (() => void) | null = null;
  private version = -1;
  private attempt = 0;
  private nextOffset: number;
  /** Where the last log chunk sent of the current attempt ends (0: none sent). */
  private loggedTo = 0;
  /** The terminal state held back until its attempt's log tail closes. */
  private final: JobRecord | null = null;
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
    this.unsubscribe = this.jobs.bus.subscribe(this.jobId, (e) => {
      // Read as it is published: a held terminal state whose tail closed since must still wait for the log after it.
      const tailOpen = e.kind === 'job' && isTerminalJobState(e.job.state) && this.jobs.tails.isOpen(e.job.id, e.job.attempt);
      if (this.held) this.held.push([e, tailOpen]);
      else this.deliver(e, tailOpen);
    });
    const job = await this.jobs.deps.store.jobs.get(this.jobId);
    if (!job || this.ended) return this.end();
    // The watcher's offset was in an attempt that is over (it retried meanwhile): this one's log from its start.
    if (this.fromAttempt !== undefined && this.fromAttempt !== job.attempt) this.nextOffset = 0;
    const over = isTerminalJobState(job.state);
    // Its tail open: the backlog first, with no state before it (any state sent would be the terminal one).
    if (over && this.jobs.tails.isOpen(job.id, job.attempt)) this.holdBack(job);
    else this.sendJob(job);
    for (let from = this.nextOffset; job.attempt > 0; ) {
      // Room first, then the read: of many watches starting on one socket, only those that find it
      // drained read a page, so the pages in memory stay few however many watches there are.
      await this.room();
      if (this.ended) return;
      const page = await this.jobs.deps.store.jobs.logs(this.jobId, job.attempt, from, WATCH_PAGE_CHUNKS);
      for (const row of page) {
        if (this.ended) return;
        this.sendLog(row.attempt, row.offset, row.size, row);
      }
      if (page.length < WATCH_PAGE_CHUNKS) break;
      from = page.at(-1)!.offset + page.at(-1)!.size;
    }
    const held = this.held ?? [];
    this.held = null;
    for (const [e, tailOpen] of held) this.deliver(e, tailOpen);
    if (over && !this.final) this.end();
  }

  /** Stops the watch (unwatch, socket closed); safe to call twice. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.unsubscribe?.();
    this.onEnd();
  }

  private deliver(e: JobBusEvent, tailOpen: boolean): void {
    if (this.ended) return;
    if (e.kind === 'log') {
      this.sendLog(e.attempt, e.offset, Buffer.byteLength(e.data, 'utf8'), e);
      return;
    }
    if (e.kind === 'tail_end') {
      if (this.final?.attempt === e.attempt) this.sendFinal(this.final);
      return;
    }
    if (e.job.version <= this.version) return;
    if (!isTerminalJobState(e.job.state)) return this.sendJob(e.job);
    // Opened before the state was published: the coordinator ended the attempt, and its tail_end follows.
    if (tailOpen) return this.holdBack(e.job);
    this.sendJob(e.job);
    this.end();
  }

  /** The state is terminal but the attempt's log may go on: follow the attempt, and send the state at tail_end. */
  private holdBack(job: JobRecord): void {
    this.follow(job);
    this.final = job;
  }

  /** The held-back state, with the log bytes streamed since it was committed, and the end. */
  private sendFinal(job: JobRecord): void {
    this.final = null;
    this.send({ type: 'job', job: toJob({ ...job, logBytes: Math.max(job.logBytes, this.loggedTo) }) });
    this.end();
  }

  private sendJob(job: JobRecord): void {
    this.follow(job);
    this.send({ type: 'job', job: toJob(job) });
  }

  /** The job's version and attempt are the watch's now: a new attempt starts a new log, from its first byte. */
  private follow(job: JobRecord): void {
    this.version = job.version;
    if (job.attempt !== this.attempt) {
      if (this.attempt !== 0) this.nextOffset = 0;
      this.attempt = job.attempt;
      this.loggedTo = 0;
    }
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
    this.loggedTo = this.nextOffset;
    this.send({ type: 'log', ...piece });
  }
}
