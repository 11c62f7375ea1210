import type Docker from 'dockerode';
import { formatDuration } from '@rbtk/protocol/runner';
import { Backoff, type BackoffOptions } from '../backoff.js';
import type { Logger } from '../log.js';
import { sleep } from '../sleep.js';
import { dockerMessage, hasStatus, isTransientDockerError } from './docker-error.js';

export interface RemovalOptions {
  /** How long to keep trying while the Engine cannot be reached (dockerd down or restarting). Default 3 min. */
  retryForMs?: number;
  /** Between tries: full jitter, from 0.5 s doubling up to 15 s. */
  backoff?: Partial<Pick<BackoffOptions, 'baseMs' | 'capMs' | 'random'>>;
  /** One try's limit, so a dockerd that takes the connection and never answers cannot hold the loop. Default 30 s. */
  tryTimeoutMs?: number;
  logger?: Logger;
}

export const DEFAULT_REMOVAL_RETRY_MS = 180_000;
const DEFAULT_TRY_TIMEOUT_MS = 30_000;

/** How one `docker rm -f` went. */
export type RemovalTry = { gone: true } | { gone: false; transient: boolean; message: string };

/** `docker rm -f` once. A container that is not there (404) is as good as removed. */
export async function removeOnce(container: Docker.Container, options: RemovalOptions = {}, signal?: AbortSignal): Promise<RemovalTry> {
  const limit = AbortSignal.timeout(options.tryTimeoutMs ?? DEFAULT_TRY_TIMEOUT_MS);
  try {
    await container.remove({ force: true, abortSignal: signal ? AbortSignal.any([signal, limit]) : limit });
    return { gone: true };
  } catch (err) {
    if (hasStatus(err, 404)) return { gone: true };
    return { gone: false, transient: isTransientDockerError(err), message: dockerMessage(err) };
  }
}

/**
 * Tries again, with backoff, to remove a container whose first removal failed
 * with `first`: while dockerd restarts, the socket refuses, and giving up at
 * once would leave the container (and whatever it holds) behind. Resolves true
 * once it is gone (or was never there), false when it gives up: an answer that
 * will not change, `retryForMs` passed, or `signal` aborted (the daemon stops).
 * What is left is removed by the next start's sweep (cleanupLeftovers). Never throws.
 */
export async function retryRemoval(
  container: Docker.Container,
  first: Extract<RemovalTry, { gone: false }>,
  fields: Record<string, unknown>,
  signal: AbortSignal,
  options: RemovalOptions = {},
): Promise<boolean> {
  const { logger } = options;
  const retryForMs = options.retryForMs ?? DEFAULT_REMOVAL_RETRY_MS;
  const leftFor = 'the next start of rbtk-runner removes it';
  if (!first.transient) {
    logger?.error({ ...fields, err: first.message }, `could not remove the job container; ${leftFor}`);
    return false;
  }
  logger?.warn(
    { ...fields, err: first.message, retryForMs },
    `could not remove the job container (is dockerd restarting?); trying again for up to ${formatDuration(retryForMs)}`,
  );
  const backoff = new Backoff({ baseMs: 500, capMs: 15_000, ...options.backoff });
  const startedAt = Date.now();
  let last = first;
  for (let tries = 1; ; tries++) {
    const left = startedAt + retryForMs - Date.now();
    if (left <= 0) {
      logger?.error({ ...fields, tries, err: last.message }, `gave up removing the job container after ${formatDuration(retryForMs)}; ${leftFor}`);
      return false;
    }
    if (!(await sleep(Math.min(backoff.next(), left), signal))) break;
    const next = await removeOnce(container, options, signal);
    if (next.gone) {
      logger?.info({ ...fields, tries: tries + 1, afterMs: Date.now() - startedAt }, 'removed the job container once dockerd answered again');
      return true;
    }
    if (signal.aborted) break;
    if (!next.transient) {
      logger?.error({ ...fields, tries: tries + 1, err: next.message }, `could not remove the job container; ${leftFor}`);
      return false;
    }
    logger?.debug({ ...fields, tries: tries + 1, err: next.message }, 'job container still not removed; trying again');
    last = next;
  }
  logger?.warn({ ...fields, err: last.message }, `rbtk-runner is stopping before the job container could be removed; ${leftFor}`);
  return false;
}
