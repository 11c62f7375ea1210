import { EXIT_REVOKED, EXIT_UPGRADE } from '@rbtk/protocol/runner';

/** rbtk-runner's exit codes; systemd's unit must not restart on REVOKED or CONFIG, and must on UPGRADE. */
export const EXIT = {
  OK: 0,
  ERROR: 1,
  /**
   * Bad flags, an existing registration without --force, `register` while the daemon runs on that file,
   * or `run` while another daemon holds its state directory or runner.yaml.
   */
  USAGE: 2,
  /** `status`: no daemon answers, or it is not connected to the coordinator; `drain`/`resume`: no daemon answers. */
  NOT_CONNECTED: 3,
  /** `run`: drained for a pending upgrade (newer agent on disk, or the coordinator's minimum); restart it. */
  UPGRADE: EXIT_UPGRADE,
  /** `drain --wait`: jobs still running at the timeout, or the daemon no longer answering (like timeout(1)). */
  TIMEOUT: 124,
  /** The runner token was revoked or is invalid: register again. */
  REVOKED: EXIT_REVOKED,
  /** runner.yaml is missing or invalid (EX_CONFIG). */
  CONFIG: 78,
} as const;

/** What `run` logs before exiting 77; operators and tests look for this exact line. */
export const REVOKED_MESSAGE = 'this runner was revoked or its token is invalid; register it again';
