import { stoppingKey as tailKey } from './runner-index.js';

/**
 * How long a watch of an attempt the coordinator ended (its timeout backstop, a cancel of an OFFLINE
 * runner's job, a lost runner's last retry) waits for the rest of its log: the runner, told to stop,
 * gets its executor's grace (10 s by default, for a process as for a container) and then flushes its spool.
 */
export const LOG_TAIL_MS = 15_000;

/**
 * Attempts the coordinator ended while their runner may still send log bytes
 * for them. The store keeps taking those bytes (the attempt and its runner are
 * still the job's), but a watch stops at the job's terminal state: so a watch
 * holds the terminal state back while the attempt's tail is open, and streams
 * what comes meanwhile. A tail closes when the runner says the attempt is over
 * there (its result, always sent after its log; a reject; a hello without it),
 * or `tailMs` after it opened, whichever is first; `closed` is told either way.
 */
export class LogTails {
  private readonly tails = new Map<string, { jobId: string; attempt: number; runnerId: string; timer: NodeJS.Timeout }>();

  constructor(
    private readonly tailMs: number,
    private readonly closed: (jobId: string, attempt: number) => void,
  ) {}

  open(jobId: string, attempt: number, runnerId: string): void {
    const key = tailKey(jobId, attempt);
    if (this.tails.has(key)) return;
    const timer = setTimeout(() => this.close(jobId, attempt), this.tailMs);
    timer.unref();
    this.tails.set(key, { jobId, attempt, runnerId, timer });
  }

  isOpen(jobId: string, attempt: number): boolean {
    return this.tails.has(tailKey(jobId, attempt));
  }

  /** The attempt's log is complete; given a runner, only when the tail is that runner's (another knowing the job id must not end it). */
  close(jobId: string, attempt: number, runnerId?: string): void {
    const key = tailKey(jobId, attempt);
    const tail = this.tails.get(key);
    if (!tail || (runnerId !== undefined && tail.runnerId !== runnerId)) return;
    clearTimeout(tail.timer);
    this.tails.delete(key);
    this.closed(jobId, attempt);
  }

  /** The runner said hello holding only `held` ("jobId:attempt"): its other attempts send nothing more. */
  closeAllBut(runnerId: string, held: ReadonlySet<string>): void {
    for (const [key, tail] of [...this.tails]) {
      if (tail.runnerId === runnerId && !held.has(key)) this.close(tail.jobId, tail.attempt, runnerId);
    }
  }

  /** Drops every tail without telling anyone: the coordinator is stopping, and its watches with it. */
  stop(): void {
    for (const tail of this.tails.values()) clearTimeout(tail.timer);
    this.tails.clear();
  }
}
