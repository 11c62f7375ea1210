import { ErrorBody, RbtkError, type ErrorCode } from '@rbtk/protocol/runner';

/**
 * Turns a coordinator's non-2xx answer into an error carrying its code and
 * message; a body that is not an ErrorBody still yields the HTTP status.
 */
export function coordinatorError(status: number, text: string): RbtkError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const parsed = ErrorBody.safeParse(body);
  if (parsed.success) {
    return new RbtkError(parsed.data.error.code as ErrorCode, parsed.data.error.message, status, parsed.data.error.details);
  }
  const snippet = text.trim().slice(0, 200);
  return new RbtkError('internal', `coordinator answered HTTP ${status}${snippet ? `: ${snippet}` : ''}`, status);
}
