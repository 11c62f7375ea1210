import { ErrorCode, formatDuration, RbtkError } from '@rbtk/protocol';
import type Docker from 'dockerode';

/*
 * Deadlines for the docker provider's calls to the Engine. A dockerd that
 * takes the connection and never answers would otherwise hold a reconcile
 * pass (and so every later pass of the pool) forever: each provider method
 * gets one deadline for all it asks the Engine, its requests are aborted
 * when it passes, and it fails with a DockerTimeoutError, which the
 * reconciler takes like any failed call (a failed create backs off).
 */

export interface DockerTimeouts {
  /**
   * create(): the member's folder and its container. 120 s: createContainer
   * does not pull (a missing image fails at once), but a busy Engine
   * unpacking a large image's layers for a first container takes tens of seconds.
   */
  createMs: number;
  /**
   * start() and terminate(): a container started or unpaused, or stopped
   * (STOP_TIMEOUT_S of grace included) and removed. 60 s: network and
   * mounts are set up or torn down; seconds normally, more under load.
   */
  startMs: number;
  /** stop() (a pause), listOwned() and the ping that finds the Engine: quick calls. 30 s, as the agent's removal tries. */
  callMs: number;
}

export const DEFAULT_DOCKER_TIMEOUTS: DockerTimeouts = { createMs: 120_000, startMs: 60_000, callMs: 30_000 };

export function dockerTimeouts(given: Partial<DockerTimeouts> = {}): DockerTimeouts {
  const t = { ...DEFAULT_DOCKER_TIMEOUTS, ...given };
  for (const [name, ms] of Object.entries(t)) {
    if (!Number.isSafeInteger(ms) || ms < 1) throw new RangeError(`docker timeout ${name} must be a whole number of milliseconds >= 1, got ${ms}`);
  }
  return t;
}

/** The Engine did not answer a provider call within its deadline; its requests were aborted. */
class DockerTimeoutError extends RbtkError {
  readonly timedOut = true;
  constructor(what: string, ms: number) {
    super(ErrorCode.Unavailable, `docker ${what}: the Docker Engine did not answer within ${formatDuration(ms)} (request aborted)`);
  }
}

/**
 * Runs fn with a signal that aborts at the deadline, and settles by then even
 * if something in fn does not heed the signal (a local file write, a library
 * call without one): the call is over for the caller either way.
 */
export async function withDeadline<T>(what: string, ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // Settled first: the aborted requests' own errors must not win the race.
      reject(new DockerTimeoutError(what, ms));
      abort.abort();
    }, ms);
  });
  const work = fn(abort.signal);
  // What fn does after the deadline fails with the abort; nobody waits for it any more.
  work.catch(() => undefined);
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** docker.ping with an abortSignal: dockerode takes one at run time, its types do not say so. */
export function pingAbortable(docker: Docker, abortSignal: AbortSignal): Promise<unknown> {
  return (docker.ping as unknown as (opts: { abortSignal: AbortSignal }) => Promise<unknown>).call(docker, { abortSignal });
}
