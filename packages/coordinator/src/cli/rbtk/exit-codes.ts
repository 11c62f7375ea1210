import { CommanderError } from 'commander';
import { ErrorCode, RbtkError } from '@rbtk/protocol';
import { InvalidRequestError } from '../../client/check-body.js';

/** rbtk's exit codes; scripts branch on them, so they are part of the CLI's contract. */
export const ExitCode = {
  Ok: 0,
  /** The coordinator refused the request, or anything else failed. */
  Failure: 1,
  /** Bad flags or values: nothing was sent. */
  Usage: 2,
  /** The coordinator could not be reached (or answered 503 unavailable). */
  Unreachable: 3,
  NotFound: 4,
  /** 401 or 403: no token, a wrong token, or a token without the right. */
  Unauthorized: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The exit-code table for `rbtk --help`. */
export const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  the coordinator refused the request, or another failure
  2  usage error: bad flags or values (nothing was sent)
  3  cannot reach the coordinator
  4  not found (HTTP 404)
  5  unauthorized or forbidden (HTTP 401/403): missing, wrong or under-privileged token
  job submit --follow and job logs --follow exit with the job's own exit code when it
  ran, else 1 when it failed, 124 when it timed out, 130 when it was cancelled`;

/** Exit codes of `--follow` for a job that did not succeed (its own exit code when it failed with one). */
export const JobExitCode = { Failed: 1, TimedOut: 124, Cancelled: 130 } as const;

/** Ends a command with this exit code and no message of rbtk's own (the job's status was already said). */
export class ExitWith extends Error {
  override readonly name = 'ExitWith';
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

/** A mistake on the command line, found before any request is sent. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The one place an error becomes an exit code. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof ExitWith) return err.exitCode;
  // The client's own check of a request body refused it before sending: a usage error too.
  if (err instanceof UsageError || err instanceof InvalidRequestError) return ExitCode.Usage;
  if (err instanceof CommanderError) {
    // Help and --version asked for exit 0 in commander too; help shown for a missing subcommand does not.
    return err.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
  }
  if (err instanceof RbtkError) {
    if (err.code === ErrorCode.Unavailable) return ExitCode.Unreachable;
    if (err.status === 404) return ExitCode.NotFound;
    if (err.status === 401 || err.status === 403) return ExitCode.Unauthorized;
  }
  return ExitCode.Failure;
}
