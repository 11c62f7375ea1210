/** Docker's own words for a failed Engine API call (dockerode keeps the JSON body in `json`). */
export function dockerMessage(err: unknown): string {
  const e = err as { json?: { message?: unknown } | null; reason?: unknown; message?: unknown };
  if (e && typeof e.json?.message === 'string') return e.json.message;
  if (e && typeof e.message === 'string') return e.message.replace(/^\(HTTP code \d+\) [a-z ]+ - /, '').trim();
  return String(err);
}

/** The Engine answered with this HTTP status (404 no such image or container, 304 already stopped). */
export function hasStatus(err: unknown, status: number): boolean {
  return (err as { statusCode?: unknown } | null)?.statusCode === status;
}

/**
 * Worth trying again: the Engine is not there (dockerd down or restarting: the socket refuses, is
 * missing, or drops the connection; a try that timed out), answers 5xx, or says 409 (a removal
 * already in progress). Any other answer (400) will not change by itself.
 */
export function isTransientDockerError(err: unknown): boolean {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status !== 'number') return true;
  return status === 409 || status >= 500;
}
