import type { LogStream } from '@rbtk/protocol';
import type { JobRecord } from '../store/job-rows.js';

/** A committed change of one job, published after its transaction. */
export type JobBusEvent =
  | { kind: 'job'; job: JobRecord }
  | { kind: 'log'; jobId: string; attempt: number; offset: number; stream: LogStream; data: string }
  /** The log of an attempt the coordinator ended is complete, as far as watches wait for it (LogTails). */
  | { kind: 'tail_end'; jobId: string; attempt: number };

export type JobListener = (event: JobBusEvent) => void;

/** Told of a listener that threw; the publisher never is. */
export type ListenerFailed = (err: unknown, jobId: string, event: JobBusEvent) => void;

/**
 * In-process fan-out of job changes to watchers. Events are published in
 * commit order (SQLite commits synchronously), so a listener sees them in order.
 */
export class JobBus {
  private readonly listeners = new Map<string, Set<JobListener>>();

  constructor(private readonly failed: ListenerFailed) {}

  subscribe(jobId: string, listener: JobListener): () => void {
    let set = this.listeners.get(jobId);
    if (!set) {
      set = new Set();
      this.listeners.set(jobId, set);
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(jobId);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) this.listeners.delete(jobId);
    };
  }

  publish(jobId: string, event: JobBusEvent): void {
    const set = this.listeners.get(jobId);
    if (!set) return;
    // A copy: a listener may unsubscribe itself (terminal state) while we iterate.
    for (const listener of [...set]) {
      // The publisher has committed already (a runner's log, a state change): one watcher's bug must
      // not fail it (its runner session closed 1011) nor keep the event from the other watchers.
      try {
        listener(event);
      } catch (err) {
        this.failed(err, jobId, event);
      }
    }
  }
}
