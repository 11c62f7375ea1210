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
