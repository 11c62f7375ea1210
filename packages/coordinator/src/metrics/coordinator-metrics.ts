import { JobState, RbtkError, RunnerStatus } from '@rbtk/protocol';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ApiAuthError } from '../auth/api-auth.js';
import type { JobRecord } from '../store/job-rows.js';
import type { PoolCountRow } from '../store/stats-store.js';
import type { Store } from '../store/store.js';
import type { SessionRegistry } from '../ws/sessions.js';
import { JobCounts } from './job-counts.js';
import { MetricsAuthError } from './metrics-route.js';

export interface MetricsSources {
  /** Runners and jobs per pool are read from it at scrape time. */
  store: Pick<Store, 'stats'>;
  /** Live runner sessions. */
  sessions: Pick<SessionRegistry, 'size'>;
  now: () => number;
}

export interface MetricsSettings {
  /** How old rbtk_jobs may be when scraped (default DEFAULT_JOB_COUNTS_MAX_AGE_MS, 10 s); 0: fresh at every scrape. */
  jobCountsMaxAgeMs?: number;
  /** When set, GET /metrics wants `Authorization: Bearer <it>` (--metrics-token); else it is open. */
  token?: string;
}

/**
 * Where an authentication failure happened: the REST API and submitter socket (API tokens),
 * the runner socket, or /metrics with --metrics-token.
 */
export type AuthSource = 'api' | 'runner' | 'metrics';

/** Members of one hosted pool in one state. */
export interface PoolMemberCount {
  project: string;
  pool: string;
  state: string;
  count: number;
}

/** Seconds, from a local dispatch (milliseconds) to a queue that waited for a runner to come back (an hour). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** Seconds, from a fast local disk's flush (0.1 ms) to a stalled one (1 s). */
const SYNC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/**
 * The coordinator's Prometheus metrics, in a registry of its own (not
 * prom-client's global one), so that several coordinators in one process
 * (tests) keep theirs apart. Built once by startCoordinator and passed
 * through the CoordinatorContext. Gauges of runners are read from the store
 * when scraped, those of jobs kept incrementally (JobCounts); the rest are
 * counted where things happen.
 */
export class CoordinatorMetrics {
  readonly registry = new Registry();
  readonly heartbeats: Counter;
  readonly tokenRotations: Counter;
  readonly authFailures: Counter<'source' | 'reason'>;
  readonly dispatchLatency: Histogram<'project' | 'pool'>;
  readonly queueWait: Histogram<'project' | 'pool'>;
  /** Each fdatasync of the SQLite WAL; every answer and pushed frame waits for one. */
  readonly walSync: Histogram;
  /** When each requeued job went back to the queue; its dispatch latency counts from then. */
  private readonly requeuedAt = new Map<string, number>();
  private submitterSockets: () => number = () => 0;
  /** Hosted pools' claim latency, time to ready, and warm hits/misses (rbtk_pool_*). */
  readonly poolClaimLatencySeconds: Histogram<'project' | 'pool'>;
  readonly poolTimeToReady: Histogram<'project' | 'pool' | 'from'>;
  readonly poolWarmHits: Counter<'project' | 'pool'>;
  readonly poolWarmMisses: Counter<'project' | 'pool'>;
  private poolMemberCounts: () => PoolMemberCount[] = () => [];
  /** Jobs per pool and state, kept incrementally: rbtk_jobs, and GET /v1/stats (fresh). */
  readonly jobCounts: JobCounts;
  /** The bearer token /metrics wants; undefined: none. */
  readonly token: string | undefined;

  constructor(
    private readonly sources: MetricsSources,
    settings: MetricsSettings = {},
  ) {
    if (settings.token !== undefined && settings.token.trim() === '') throw new RangeError('the metrics token must not be empty');
    this.token = settings.token;
    this.jobCounts = new JobCounts(sources.store.stats, sources.now, settings.jobCountsMaxAgeMs);
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    const runners: Gauge<'project' | 'pool' | 'status'> = new Gauge({
      name: 'rbtk_runners',
      help: 'Registered runners per pool and status',
      labelNames: ['project', 'pool', 'status'],
      registers,
      collect: async () => setCounts(runners, 'status', RunnerStatus.options, await sources.store.stats.runnerCountsByPool()),
    });
    const jobs: Gauge<'project' | 'pool' | 'state'> = new Gauge({
      name: 'rbtk_jobs',
      help: 'Jobs per pool and state (at most --metrics-refresh old)',
      labelNames: ['project', 'pool', 'state'],
      registers,
      // Kept incrementally, at most jobCountsMaxAgeMs old: a scrape must not walk every job ever stored.
      collect: async () => setCounts(jobs, 'state', JobState.options, await this.jobCounts.read()),
    });
    const sessions: Gauge<'kind'> = new Gauge({
      name: 'rbtk_ws_sessions',
      help: 'Open WebSocket sessions by kind (runner, submitter)',
      labelNames: ['kind'],
      registers,
      collect: () => {
        sessions.set({ kind: 'runner' }, sources.sessions.size);
        sessions.set({ kind: 'submitter' }, this.submitterSockets());
      },
    });
    this.dispatchLatency = new Histogram({
      name: 'rbtk_dispatch_latency_seconds',
      help: 'From queued (submit or requeue) to assigned to a runner',
      labelNames: ['project', 'pool'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.queueWait = new Histogram({
      name: 'rbtk_queue_wait_seconds',
      help: 'From created to started on a runner',
      labelNames: ['project', 'pool'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.walSync = new Histogram({
      name: 'rbtk_store_wal_sync_seconds',
      help: "fdatasync of the database's write-ahead log, which every acknowledged change waits for (the disk's share of latency)",
      buckets: SYNC_BUCKETS,
      registers,
    });
    const poolMembers: Gauge<'project' | 'pool' | 'state'> = new Gauge({
      name: 'rbtk_pool_members',
      help: 'Members of hosted pools per state (warming, ready, stopped, claimed, errored)',
      labelNames: ['project', 'pool', 'state'],
      registers,
      collect: () => {
        poolMembers.reset();
        for (const c of this.poolMemberCounts()) poolMembers.set({ project: c.project, pool: c.pool, state: c.state }, c.count);
      },
    });
    this.poolClaimLatencySeconds = new Histogram({
      name: 'rbtk_pool_claim_latency_seconds',
      help: 'Hosted pools: from a job submitted to the member claimed for it (assigned)',
      labelNames: ['project', 'pool'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.poolTimeToReady = new Histogram({
      name: 'rbtk_pool_time_to_ready_seconds',
      help: 'Hosted pools: from a member created (from="create") or started from stopped (from="stopped") to ready',
      labelNames: ['project', 'pool', 'from'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.poolWarmHits = new Counter({
      name: 'rbtk_pool_warm_hits_total',
      help: 'Hosted pools: jobs that found a ready (or stopped) member at submit',
      labelNames: ['project', 'pool'],
      registers,
    });
    this.poolWarmMisses = new Counter({
      name: 'rbtk_pool_warm_misses_total',
      help: 'Hosted pools: jobs that had to wait (or overflow) for a member',
      labelNames: ['project', 'pool'],
      registers,
    });
    this.heartbeats = new Counter({ name: 'rbtk_heartbeats_received_total', help: 'Runner heartbeats received', registers });
    this.tokenRotations = new Counter({
      name: 'rbtk_token_rotations_total',
      help: 'Runner token rotations completed (a pending token became current)',
      registers,
    });
    this.authFailures = new Counter({
      name: 'rbtk_auth_failures_total',
      help: 'Requests refused for their credentials (401), by source (api, runner, metrics) and reason',
      labelNames: ['source', 'reason'],
      registers,
    });
  }

  /** Where the submitter socket count is read from (its WebSocket server's clients). */
  countSubmitterSockets(count: () => number): void {
    this.submitterSockets = count;
  }

  /** Where hosted pools' member counts are read from at scrape time. */
  countPoolMembers(count: () => PoolMemberCount[]): void {
    this.poolMemberCounts = count;
  }

  /** A job admitted to a hosted pool: a warm hit (a ready or stopped member took it) or a miss. */
  poolClaimed(labels: { project: string; pool: string }, hit: boolean): void {
    (hit ? this.poolWarmHits : this.poolWarmMisses).inc(labels);
  }

  poolClaimLatency(labels: { project: string; pool: string }, ms: number): void {
    this.poolClaimLatencySeconds.observe(labels, seconds(ms));
  }

  poolMemberReady(labels: { project: string; pool: string }, ms: number, from: 'create' | 'stopped'): void {
    this.poolTimeToReady.observe({ ...labels, from }, seconds(ms));
  }

  /** A 401 answered to a REST, submitter-socket or /metrics caller; other errors are not counted. */
  apiRequestFailed(err: unknown): void {
    if (!(err instanceof RbtkError) || err.status !== 401) return;
    if (err instanceof MetricsAuthError) return this.authFailed('metrics', err.reason);
    this.authFailed('api', err instanceof ApiAuthError ? err.reason : err.code);
  }

  authFailed(source: AuthSource, reason: string): void {
    this.authFailures.inc({ source, reason });
  }

  /** After every committed job change: dispatch latency on queued → assigned, queue wait on → running. */
  jobChanged(before: JobRecord, after: JobRecord): void {
    if (before.state === after.state) return;
    const labels = { project: after.project, pool: after.poolName };
    if (after.state === 'queued') {
      this.requeuedAt.set(after.id, this.sources.now());
      return;
    }
    if (before.state === 'queued') {
      const queuedAt = this.requeuedAt.get(after.id) ?? (after.attempt <= 1 ? after.createdAt : undefined);
      this.requeuedAt.delete(after.id);
      if (after.state === 'assigned' && queuedAt !== undefined && after.assignedAt !== null) {
        this.dispatchLatency.observe(labels, seconds(after.assignedAt - queuedAt));
      }
    }
    if (after.state === 'running' && after.startedAt !== null) {
      this.queueWait.observe(labels, seconds(after.startedAt - after.createdAt));
    }
  }

  /** The text exposition format, and its content type. */
  async render(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}

const seconds = (ms: number): number => Math.max(0, ms) / 1000;

/** Replaces the gauge's series: every pool gets every key, 0 where it has none; deleted pools drop out. */
function setCounts<K extends string, L extends string>(
  gauge: Gauge<'project' | 'pool' | L>,
  label: L,
  keys: readonly K[],
  rows: PoolCountRow<K>[],
): void {
  gauge.reset();
  const pools = new Map<string, { project: string; pool: string; counts: Map<K, number> }>();
  for (const row of rows) {
    const id = `${row.project}\u0000${row.pool}`;
    let entry = pools.get(id);
    if (!entry) pools.set(id, (entry = { project: row.project, pool: row.pool, counts: new Map() }));
    if (row.key !== null) entry.counts.set(row.key, row.count);
  }
  for (const { project, pool, counts } of pools.values()) {
    for (const key of keys) {
      gauge.set({ project, pool, [label]: key } as Record<'project' | 'pool' | L, string>, counts.get(key) ?? 0);
    }
  }
}
