import pino, { type Logger, type LoggerOptions } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Wherever a token could end up in a log object, pino writes [redacted] instead. */
const REDACT_PATHS = [
  'authorization',
  'token',
  'secret',
  'headers.authorization',
  'req.headers.authorization',
  'request.headers.authorization',
  '*.authorization',
  '*.token',
  '*.secret',
];

export interface LoggerConfig {
  level?: LogLevel;
  /** Where lines go; default stdout. Tests pass a stream to read them back. */
  destination?: NodeJS.WritableStream;
  /** Human-readable output; default: when stdout is a TTY. */
  pretty?: boolean;
}

/**
 * JSON lines (one object per line, pino's format) for journald and log
 * shippers; pino-pretty in a terminal. Pretty printing runs in this thread
 * (no transport worker) so the first lines are never lost on a quick exit.
 */
export function createLogger(config: LoggerConfig = {}): Logger {
  const options: LoggerOptions = {
    level: config.level ?? 'info',
    base: { name: 'rbtk-coordinator' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  const usePretty = config.pretty ?? (config.destination === undefined && process.stdout.isTTY === true);
  if (usePretty) {
    return pino(options, pretty({ colorize: true, destination: config.destination ?? 1, sync: true }));
  }
  return pino(options, config.destination ?? pino.destination({ dest: 1, sync: true }));
}
