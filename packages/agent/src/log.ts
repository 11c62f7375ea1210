import { createRequire } from 'node:module';
import { redactToken } from '@rbtk/protocol/runner';
import { pino, type DestinationStream, type Level, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

// pino-pretty only on a terminal: a daemon under systemd never loads it (or its memory).
const loadPretty = (): typeof PinoPretty => createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;

export type { Logger } from 'pino';

export interface LoggerOptions {
  level?: Level;
  /** Human-readable lines instead of JSON; the CLI turns this on when stdout is a TTY. */
  pretty?: boolean;
  /** Where lines go; stdout by default. Tests pass a stream to read them back. */
  destination?: DestinationStream;
}

/**
 * Any field that may hold a token. The censor keeps the token's kind and id
 * (redactToken) so a log still says which token was involved, never its secret.
 */
const REDACT_PATHS = [
  'token',
  '*.token',
  'rotatedToken.token',
  'registrationToken',
  'authorization',
  'headers.authorization',
  '*.headers.authorization',
];

/** Idempotent: a path may match twice, and a value may already be redacted. */
function censorToken(value: unknown): string {
  if (typeof value !== 'string') return '[redacted]';
  if (value === '[redacted]' || /^rbtk_[a-z]+_[A-Za-z0-9]+_…$/.test(value)) return value;
  return redactToken(value.replace(/^Bearer\s+/i, ''));
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const opts = {
    level: options.level ?? 'info',
    // No `name` in the base: log lines use it for the runner's name.
    base: { pid: process.pid },
    redact: {
      paths: REDACT_PATHS,
      censor: censorToken,
    },
  };
  if (options.destination) return pino(opts, options.destination);
  // Synchronous writes: the process may exit right after its last line (exit 77).
  if (options.pretty) return pino(opts, loadPretty()({ sync: true }));
  return pino(opts, pino.destination({ dest: 1, sync: true }));
}
