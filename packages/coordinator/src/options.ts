import {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_OFFLINE_AFTER_MS,
  DEFAULT_REAP_AFTER_MS,
  DEFAULT_TOKEN_ROTATION_MS,
  type HostedProvider,
} from '@rbtk/protocol';
import type { Timings } from './context.js';
import type { DockerTimeouts } from './hosted/docker-timeouts.js';
import type { HostedProviderImpl } from './hosted/provider.js';
import type { Logger, LogLevel } from './log.js';
import type { SubmitterLimits } from './ws/submitter-session.js';

/** How long a runner has to accept an assignment (--accept-timeout). */
export const DEFAULT_ACCEPT_TIMEOUT_MS = 10_000;
/**
 * Log bytes stored per attempt (--max-log-bytes): 16 times GitLab's 4 MiB default (which verbose
 * builds outgrow), far under Buildkite's 1 GB (sized for a hosted object store, not a coordinator's
 * own disk). A thousand runaway attempts then fill 64 GiB at most.
 */
export const DEFAULT_MAX_LOG_BYTES = 64 * 2 ** 20;
/** How long a runner has after its upgrade to say hello (its first frame); a real agent sends it at once. */
export const DEFAULT_HELLO_TIMEOUT_MS = 10_000;
/** Headers and body of one HTTP request must arrive within this (slowloris); upgraded sockets are not timed. */
export const DEFAULT_HTTP_REQUEST_TIMEOUT_MS = 30_000;

/** rbtk-coordinator's exit code when the database's WAL could not be synced to disk (sysexits' EX_IOERR). */
export const EXIT_STORAGE_FAILED = 74;

export interface CoordinatorOptions {
  /** Holds rbtk.db and admin.token; created (mode 0700) if missing. */
  dataDir: string;
  /**
   * Called when the coordinator cannot go on safely (an fdatasync of its WAL failed), after the
   * fatal log line; nothing more is acknowledged. Default: exit the process with EXIT_STORAGE_FAILED,
   * so that a restart (systemd's) recovers from what is on disk. Embedders and tests may stop instead.
   */
  onFatal?: (err: Error) => void;
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** Port; default 7420, 0 for any free port (the URL says which). */
  port?: number;
  heartbeatIntervalMs?: number;
  offlineAfterMs?: number;
  reapAfterMs?: number;
  /** 0: rotate the runner token on every heartbeat. */
  tokenRotationMs?: number;
  /** A runner that does not accept an assignment this fast loses it to another; default 10 s. */
  acceptTimeoutMs?: number;
  /** Log bytes stored per job attempt; the rest is acknowledged and dropped, after a marker. 0: no limit. Default 64 MiB. */
  maxLogBytes?: number;
  /** An upgraded runner socket that sends no hello within this is closed with 4408; default 10 s. Tests lower it. */
  helloTimeoutMs?: number;
  /** Time for one HTTP request's headers and body; default 30 s. Tests lower it. */
  httpRequestTimeoutMs?: number;
  /** Runners older than this semantic version drain and exit 75 (to be restarted into an upgrade). */
  minRunnerVersion?: string;
  /** How often each hosted pool is reconciled (also at once after a claim or a spec change); default 30 s. */
  hostedReconcileIntervalMs?: number;
  /** Docker provider: run the agent the pool's image has (default), or this host's node and rbtk-runner bind-mounted. */
  hostedDockerAgent?: 'image' | 'host';
  /** Docker provider: each call's deadline (create 120 s, start and remove 60 s, the others 30 s). Tests shorten them. */
  hostedDockerTimeouts?: Partial<DockerTimeouts>;
  /** Providers to use instead of this host's (an embedder's own, e.g. a cloud one, or a test's instrumented one). */
  hostedProviders?: Partial<Record<HostedProvider, HostedProviderImpl>>;
  /**
   * What one submitter socket may hold (DEFAULT_SUBMITTER_LIMITS): bytes waiting past which it is closed
   * with 1013 (32 MiB), requests in hand past which it is read no further (1024), watches (4096).
   * Tests lower them to reach them with little traffic.
   */
  submitterLimits?: Partial<SubmitterLimits>;
  /** How old /metrics' rbtk_jobs may be (counted incrementally, reused this long); default 10 s, 0: every scrape. */
  metricsRefreshMs?: number;
  /** When set, GET /metrics wants `Authorization: Bearer <it>`; default: open, like the health checks. */
  metricsToken?: string;
  /** WebSocket ping interval for finding dead TCP peers; default from the heartbeat interval. */
  pingIntervalMs?: number;
  /** A ready logger; else one is made with logLevel (default info). */
  logger?: Logger;
  logLevel?: LogLevel;
  /** Epoch milliseconds; tests inject a clock. Default Date.now. */
  now?: () => number;
}

export interface Coordinator {
  /** http://host:port — the actual port when 0 was asked for. */
  url: string;
  host: string;
  port: number;
  dataDir: string;
  /** Where the instance admin token was written on first start. */
  adminTokenFile: string;
  /** Closes sockets (1001), stops loops, closes the store. Safe to call twice. */
  stop(): Promise<void>;
}

export function resolveTimings(options: CoordinatorOptions): Timings {
  const timings: Timings = {
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
    offlineAfterMs: options.offlineAfterMs ?? DEFAULT_OFFLINE_AFTER_MS,
    reapAfterMs: options.reapAfterMs ?? DEFAULT_REAP_AFTER_MS,
    tokenRotationMs: options.tokenRotationMs ?? DEFAULT_TOKEN_ROTATION_MS,
    acceptTimeoutMs: options.acceptTimeoutMs ?? DEFAULT_ACCEPT_TIMEOUT_MS,
  };
  for (const [name, value] of Object.entries(timings)) {
    const min = name === 'tokenRotationMs' ? 0 : 1;
    if (!Number.isInteger(value) || value < min) {
      throw new RangeError(`${name} must be a whole number of milliseconds >= ${min}, got ${value}`);
    }
  }
  return timings;
}

/** What bounds a client's use of this coordinator: its log bytes per attempt, its time to hello or to send a request. */
export interface Limits {
  /** 0: no limit. */
  maxLogBytes: number;
  helloTimeoutMs: number;
  httpRequestTimeoutMs: number;
}

export function resolveLimits(options: CoordinatorOptions): Limits {
  const limits: Limits = {
    maxLogBytes: options.maxLogBytes ?? DEFAULT_MAX_LOG_BYTES,
    helloTimeoutMs: options.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS,
    httpRequestTimeoutMs: options.httpRequestTimeoutMs ?? DEFAULT_HTTP_REQUEST_TIMEOUT_MS,
  };
  for (const [name, value] of Object.entries(limits)) {
    const min = name === 'maxLogBytes' ? 0 : 1;
    if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`${name} must be a whole number >= ${min}, got ${value}`);
  }
  return limits;
}

/** Ping often enough to free dead sockets within a minute or so, not more than once a second. */
export function defaultPingInterval(heartbeatIntervalMs: number): number {
  return Math.min(30_000, Math.max(1000, heartbeatIntervalMs));
}
