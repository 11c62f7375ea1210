import { ErrorCode, RbtkError } from '@rbtk/protocol';
import type { ResponseSchema } from './api-request.js';

/**
 * A request body that failed its schema here, before anything was sent. An RbtkError
 * (bad_request, 400) like the coordinator's own refusal, so callers need not care; rbtk
 * tells it apart to exit 2 ("nothing was sent") rather than 1.
 */
export class InvalidRequestError extends RbtkError {
  constructor(message: string) {
    super(ErrorCode.BadRequest, message);
  }
}

/** Validates a request body before it leaves, so a bad value fails here with the field's name. */
export function checkBody<T>(schema: ResponseSchema<T>, input: unknown, what: string): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue && issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : '';
  throw new InvalidRequestError(`invalid ${what}: ${field}${issue?.message ?? 'invalid'}`);
}
