/**
 * Error codes that travel on the wire (REST error bodies and WebSocket `error`
 * messages). Clients branch on the code, people read the message.
 */
export const ErrorCode = {
  BadRequest: 'bad_request',
  InvalidJson: 'invalid_json',
  BodyTooLarge: 'body_too_large',
  Unauthorized: 'unauthorized',
  Forbidden: 'forbidden',
  NotFound: 'not_found',
  Conflict: 'conflict',
  TokenUnknown: 'token_unknown',
  TokenExpired: 'token_expired',
  TokenUsedUp: 'token_used_up',
  TokenRevoked: 'token_revoked',
  AirgappedRequired: 'airgapped_required',
  ProtocolMismatch: 'protocol_mismatch',
  MalformedMessage: 'malformed_message',
  UnknownMessage: 'unknown_message',
  HelloRequired: 'hello_required',
  Unavailable: 'unavailable',
  /** The coordinator's database disk is full: it refuses writes until space returns. */
  DiskFull: 'disk_full',
  Internal: 'internal',
  /** A per-connection limit (watches on one submitter socket) was reached; the connection stays open. */
  LimitExceeded: 'limit_exceeded',
  // Job routing refusals (submit): which pool, which runner.
  PoolNotFound: 'pool_not_found',
  NoPoolMatches: 'no_pool_matches',
  AmbiguousSelector: 'ambiguous_selector',
  Unsatisfiable: 'unsatisfiable',
  /** Cancel of a job that already reached a terminal state. */
  JobFinished: 'job_finished',
  /** A submit repeated an idempotency key with a different spec: the key names another job. */
  IdempotencyConflict: 'idempotency_conflict',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * WebSocket close codes the coordinator uses on the runner socket (README,
 * "Close codes"). 1000/1001/1009/1011 keep their RFC 6455 meaning.
 */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  MessageTooBig: 1009,
  InternalError: 1011,
  /** A watcher read its socket too slowly for the events it asked for: reconnect and resume from its offset. */
  TryAgainLater: 1013,
  /** The frame was not JSON, failed its schema, or named an unknown type; or came before hello, or was a second hello. */
  BadMessage: 4400,
  /**
   * The runner's token was revoked or is no longer valid: register again. On the submitter
   * socket: its API token was revoked or expired (an `error` frame says which just before).
   */
  Revoked: 4401,
  /** The runner sent no hello in time after its upgrade (a stuck or foreign client): reconnect. */
  HelloTimeout: 4408,
  /** The runner opened a newer session; this one is replaced. */
  Replaced: 4409,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** HTTP status for each code, for servers that throw RbtkError. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  bad_request: 400,
  invalid_json: 400,
  body_too_large: 413,
  unauthorized: 401,
  token_unknown: 401,
  token_expired: 401,
  token_used_up: 401,
  token_revoked: 401,
  forbidden: 403,
  airgapped_required: 403,
  not_found: 404,
  pool_not_found: 404,
  conflict: 409,
  job_finished: 409,
  idempotency_conflict: 409,
  limit_exceeded: 429,
  protocol_mismatch: 426,
  unavailable: 503,
  disk_full: 507,
  internal: 500,
};

/** An error with a wire code; the one error class both programs throw on purpose. */
export class RbtkError extends Error {
  override readonly name = 'RbtkError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly status: number = STATUS[code] ?? 400,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** Normalises anything caught into an Error, once, at the catch site. */
export function coerceError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new Error(typeof err === 'string' ? err : JSON.stringify(err));
}
