/**
 * The agent's own error classes. Each has a `code`; the daemon sorts them into
 * unrecoverable (stop and say why) and retryable (back off and reconnect).
 */

/** runner.yaml is missing, unreadable, not YAML, or fails the RunnerConfig schema. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'invalid_config';
  constructor(
    readonly path: string,
    message: string,
    /** The offending key (dotted path), when one is to blame. */
    readonly key?: string,
  ) {
    super(message);
  }
}

/**
 * runner.yaml was replaced (the rename happened: the file holds the new config) but
 * its directory could not be fsynced, so the rename may not survive a power loss.
 */
export class ConfigNotDurableError extends Error {
  override readonly name = 'ConfigNotDurableError';
  readonly code = 'config_not_durable';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** The coordinator refused the runner token (401) or revoked the runner (close 4401). */
export class RevokedError extends Error {
  override readonly name = 'RevokedError';
  readonly code = 'revoked';
  constructor(
    message: string,
    /** The coordinator's error code (token_unknown, token_revoked) when it sent one. */
    readonly reason?: string,
  ) {
    super(message);
  }
}

/** The coordinator speaks another protocol version (426): upgrading one side is the only fix. */
export class ProtocolMismatchError extends Error {
  override readonly name = 'ProtocolMismatchError';
  readonly code = 'protocol_mismatch';
}

/** Could not open or keep a session; worth another try after a backoff. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  readonly code = 'connection_failed';
}

/** `register` found an existing registration and was not told to replace it. */
export class AlreadyRegisteredError extends Error {
  override readonly name = 'AlreadyRegisteredError';
  readonly code = 'already_registered';
}

/** `register --force` found a daemon answering on the config's control socket: it would rotate the old runner's token back in. */
export class DaemonRunningError extends Error {
  override readonly name = 'DaemonRunningError';
  readonly code = 'daemon_running';
}

/** `run` found another rbtk-runner holding this state directory or runner.yaml; nothing was touched. */
export class AlreadyRunningError extends Error {
  override readonly name = 'AlreadyRunningError';
  readonly code = 'already_running';
  /** The holder's pid, when it said within a second (a stopped daemon does not). */
  constructor(
    message: string,
    readonly pid?: number,
  ) {
    super(message);
  }
}

/** Errors after which reconnecting cannot help. */
export function isUnrecoverable(err: unknown): err is RevokedError | ProtocolMismatchError {
  return err instanceof RevokedError || err instanceof ProtocolMismatchError;
}

/** A flag or argument the user can fix; the CLI exits 2 (usage). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly code = 'usage';
}
