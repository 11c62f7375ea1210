import type { HostedPools } from './hosted/hosted-pools.js';
import type { JobService } from './jobs/job-service.js';
import type { Logger } from './log.js';
import type { CoordinatorMetrics } from './metrics/coordinator-metrics.js';
import type { Store } from './store/store.js';
import type { SessionRegistry } from './ws/sessions.js';

/** Timings the coordinator runs with (all milliseconds). */
export interface Timings {
  heartbeatIntervalMs: number;
  offlineAfterMs: number;
  reapAfterMs: number;
  /** 0: a new token on every heartbeat. */
  tokenRotationMs: number;
  /** How long a runner has to accept an assignment before it goes to another. */
  acceptTimeoutMs: number;
}

/** What request handlers, sessions and loops share. Built once by startCoordinator. */
export interface CoordinatorContext {
  store: Store;
  sessions: SessionRegistry;
  jobs: JobService;
  /** Hosted pools (members the coordinator provisions); set at start. */
  hosted?: HostedPools;
  log: Logger;
  /** Prometheus metrics of this coordinator (its own registry). */
  metrics: CoordinatorMetrics;
  timings: Timings;
  /** The oldest rbtk-runner wanted (--min-runner-version), told in welcome and heartbeat_ack; older ones drain and exit 75. */
  minRunnerVersion?: string;
  /** Epoch milliseconds; injectable so tests control time. */
  now: () => number;
}
