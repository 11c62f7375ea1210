/** Product defaults shared by both programs (DESIGN.md, "Liveness"). */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 15_000;
export const DEFAULT_OFFLINE_AFTER_MS = 60_000;
export const DEFAULT_REAP_AFTER_MS = 24 * 60 * 60_000;
export const DEFAULT_TOKEN_ROTATION_MS = 60 * 60_000;

export const DEFAULT_LISTEN = '127.0.0.1:7420';
export const DEFAULT_PROJECT = 'default';

/** Largest WebSocket frame either side accepts; bigger frames close with 1009. */
export const MAX_WS_FRAME_BYTES = 1024 * 1024;
/** Largest REST request body the coordinator reads. */
export const MAX_HTTP_BODY_BYTES = 1024 * 1024;

/** Exit code of rbtk-runner when its token is revoked or invalid: systemd must not restart it. */
export const EXIT_REVOKED = 77;

/**
 * Exit code of rbtk-runner after a pending upgrade drained it (a newer agent on
 * disk, or the coordinator's --min-runner-version): systemd restarts it
 * (RestartForceExitStatus=75), into the new version.
 */
export const EXIT_UPGRADE = 75;

/** Paths of the coordinator's API, declared once for server, CLI and agent. */
export const ROUTES = {
  health: '/healthz',
  ready: '/readyz',
  /** Prometheus text format; no token unless the coordinator runs with --metrics-token. */
  metrics: '/metrics',
  projects: '/v1/projects',
  pools: '/v1/pools',
  pool: (name: string) => `/v1/pools/${encodeURIComponent(name)}`,
  poolTokens: (name: string) => `/v1/pools/${encodeURIComponent(name)}/tokens`,
  poolDrain: (name: string) => `/v1/pools/${encodeURIComponent(name)}/drain`,
  poolPause: (name: string) => `/v1/pools/${encodeURIComponent(name)}/pause`,
  poolResume: (name: string) => `/v1/pools/${encodeURIComponent(name)}/resume`,
  poolStats: (name: string) => `/v1/pools/${encodeURIComponent(name)}/stats`,
  /** Every pool's stats of the project, in one answer. */
  stats: '/v1/stats',
  /** A hosted pool's spec and members (GET), spec changes (POST). */
  poolHosted: (name: string) => `/v1/pools/${encodeURIComponent(name)}/hosted`,
  poolReconcile: (name: string) => `/v1/pools/${encodeURIComponent(name)}/reconcile`,
  runners: '/v1/runners',
  runner: (id: string) => `/v1/runners/${encodeURIComponent(id)}`,
  runnerRevoke: (id: string) => `/v1/runners/${encodeURIComponent(id)}/revoke`,
  runnerDrain: (id: string) => `/v1/runners/${encodeURIComponent(id)}/drain`,
  runnerResume: (id: string) => `/v1/runners/${encodeURIComponent(id)}/resume`,
  register: '/v1/runners/register',
  runnerSocket: '/v1/runner/ws',
  apiTokens: '/v1/tokens',
  apiToken: (id: string) => `/v1/tokens/${encodeURIComponent(id)}`,
  audit: '/v1/audit',
  jobs: '/v1/jobs',
  job: (id: string) => `/v1/jobs/${encodeURIComponent(id)}`,
  jobLogs: (id: string) => `/v1/jobs/${encodeURIComponent(id)}/logs`,
  jobCancel: (id: string) => `/v1/jobs/${encodeURIComponent(id)}/cancel`,
  jobsSocket: '/v1/jobs/ws',
} as const;
