import type { DrainControl } from './drain.js';
import { STOPPED_MESSAGE, type JobManager } from './jobs/manager.js';
import type { Logger } from './log.js';

/** setTimeout's limit; a longer shutdown_timeout would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Why the daemon left its loop: asked to stop (exit 0), or to make way for an upgrade (exit 75). */
export type ExitGoal = 'stopped' | 'upgrade';

export interface DaemonExitDeps {
  drain: DrainControl;
  logger: Logger;
  /** Absent in a runner that runs no jobs: it leaves at once. */
  jobs?: JobManager;
  shutdownTimeoutMs: number;
  /** As written in runner.yaml, for messages. */
  shutdownTimeout: string;
}

/**
 * How the daemon leaves. stop() (SIGTERM) drains, lets the running jobs
 * finish for up to shutdown_timeout, then stops the rest; force() (a second
 * SIGTERM) stops them now; upgrade() drains and waits for every job, however
 * long it takes, so an upgrade never kills one. Stopped jobs are reported
 * cancelled with the reason. Once the jobs are done and their results
 * acknowledged (or after a short wait), `signal` aborts and the connect loop
 * ends. Each method is safe to call twice; a stop outranks an upgrade.
 */
export class DaemonExit {
  private wanted: ExitGoal | undefined;
  private readonly done = new AbortController();
  private finishing: Promise<void> | undefined;
  private deadline: NodeJS.Timeout | undefined;

  constructor(private readonly deps: DaemonExitDeps) {}

  /** Aborts when the daemon should close its session and return. */
  get signal(): AbortSignal {
    return this.done.signal;
  }

  /** Where the daemon is headed, once asked. */
  get goal(): ExitGoal | undefined {
    return this.wanted;
  }

  stop(reason: string): void {
    if (this.wanted === 'stopped') return;
    this.wanted = 'stopped';
    this.deps.drain.drain('stop', reason);
    const { shutdownTimeoutMs, shutdownTimeout, logger } = this.deps;
    this.deadline = setTimeout(() => {
      const busy = this.deps.jobs?.running().length ?? 0;
      if (busy > 0) logger.warn({ jobs: busy, shutdownTimeout }, 'shutdown_timeout passed: stopping the jobs still running');
      this.deps.jobs?.stopAll(`${STOPPED_MESSAGE}: shutdown_timeout (${shutdownTimeout}) passed`);
    }, Math.min(shutdownTimeoutMs, MAX_TIMER_MS));
    this.deadline.unref();
    this.finish(reason);
  }

  /** Stops the running jobs now; `why` ends up in their results. */
  force(why: string): void {
    this.stop(`rbtk-runner is stopping (${why})`);
    const busy = this.deps.jobs?.running().length ?? 0;
    if (busy > 0) this.deps.logger.warn({ jobs: busy, reason: why }, 'stopping the running jobs now');
    this.deps.jobs?.stopAll(`${STOPPED_MESSAGE}: ${why}`);
  }

  upgrade(reason: string): void {
    if (this.wanted) return;
    this.wanted = 'upgrade';
    this.deps.drain.drain('upgrade', reason);
    this.finish(reason);
  }

  private finish(reason: string): void {
    const { jobs, logger } = this.deps;
    const busy = jobs?.running().length ?? 0;
    logger.info({ reason, jobs: busy, ...(this.wanted === 'stopped' ? { shutdownTimeout: this.deps.shutdownTimeout } : {}) },
      busy > 0 ? 'draining: waiting for running jobs to finish' : 'draining: no job running');
    this.finishing ??= (async () => {
      if (jobs) {
        await jobs.idle();
        await jobs.settle();
      }
      clearTimeout(this.deadline);
      this.done.abort();
    })();
  }
}
