import { RbtkError } from '@rbtk/protocol';
import { describe, expect, it } from 'vitest';
import { ApiAuthError } from '../src/auth/api-auth.js';
import { CoordinatorMetrics } from '../src/metrics/coordinator-metrics.js';
import { MetricsAuthError } from '../src/metrics/metrics-route.js';
import type { JobRecord } from '../src/store/job-rows.js';
import type { PoolCountRow, StatsStore } from '../src/store/stats-store.js';

/*
 * The metric objects alone, with the store replaced by fixed answers: what
 * each hook observes, zero-filled gauges, and one registry per coordinator.
 */

const T0 = Date.UTC(2030, 0, 1);

/** `jobs`: unfinished counts (the finished ones come from job_events: test/job-counts.test.ts). */
function metricsWith(rows: { jobs?: PoolCountRow<any>[]; runners?: PoolCountRow<any>[] } = {}, now = () => T0) {
  const pools = [...new Set((rows.jobs ?? []).map((r) => r.pool))];
  const stats = {
    unfinishedJobCounts: async () => (rows.jobs ?? []).map((r) => ({ ...r, poolId: pools.indexOf(r.pool) + 1 })),
    finishedJobCounts: async () => ({ upTo: 0, counts: [] }),
    finishedJobCountsAfter: async () => ({ upTo: 0, counts: [] }),
    runnerCountsByPool: async () => rows.runners ?? [],
  } as unknown as StatsStore;
  return new CoordinatorMetrics({ store: { stats }, sessions: { size: 2 }, now });
}

const job = (over: Partial<JobRecord>): JobRecord =>
  ({
    id: 'j1',
    project: 'default',
    poolName: 'build',
    state: 'queued',
    attempt: 0,
    createdAt: T0,
    assignedAt: null,
    startedAt: null,
    finishedAt: null,
    ...over,
  }) as JobRecord;

async function values(m: CoordinatorMetrics, name: string) {
  const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
  if (!metric) throw new Error(`no metric ${name}`);
  return metric.values as { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

describe('coordinator metrics', () => {
  it('keep a registry per coordinator, so two in one process do not collide', async () => {
    const a = metricsWith();
    const b = metricsWith();
    a.heartbeats.inc();
    a.heartbeats.inc();
    expect((await values(a, 'rbtk_heartbeats_received_total'))[0]!.value).toBe(2);
    expect((await values(b, 'rbtk_heartbeats_received_total'))[0]!.value).toBe(0);
    // Default process metrics are there too.
    expect((await a.registry.getMetricsAsJSON()).some((x) => x.name === 'process_cpu_user_seconds_total')).toBe(true);
  });

  it('give every pool every state and status, 0 where it has none', async () => {
    const m = metricsWith({
      jobs: [
        { project: 'default', pool: 'build', key: 'queued', count: 3 },
        { project: 'default', pool: 'empty', key: null, count: 0 },
      ],
      runners: [{ project: 'default', pool: 'build', key: 'ONLINE', count: 1 }],
    });
    const jobs = await values(m, 'rbtk_jobs');
    expect(jobs).toHaveLength(2 * 7);
    expect(jobs).toContainEqual({ value: 3, labels: { project: 'default', pool: 'build', state: 'queued' } });
    expect(jobs).toContainEqual({ value: 0, labels: { project: 'default', pool: 'empty', state: 'timed_out' } });
    const runners = await values(m, 'rbtk_runners');
    expect(runners).toHaveLength(3);
    expect(runners).toContainEqual({ value: 1, labels: { project: 'default', pool: 'build', status: 'ONLINE' } });
    expect(runners).toContainEqual({ value: 0, labels: { project: 'default', pool: 'build', status: 'OFFLINE' } });
    const sessions = await values(m, 'rbtk_ws_sessions');
    expect(sessions).toContainEqual({ value: 2, labels: { kind: 'runner' } });
    expect(sessions).toContainEqual({ value: 0, labels: { kind: 'submitter' } });
  });

  it('observe dispatch latency from submit or requeue, and queue wait from created', async () => {
    let now = T0;
    const m = metricsWith({}, () => now);
    const queued = job({});
    const assigned = job({ state: 'assigned', attempt: 1, assignedAt: T0 + 250 });
    m.jobChanged(queued, assigned);
    const running = job({ ...assigned, state: 'running', startedAt: T0 + 400 });
    m.jobChanged(assigned, running);
    // Lost, requeued at T0 + 10 s, assigned again 2 s later.
    now = T0 + 10_000;
    const requeued = job({ ...running, state: 'queued' });
    m.jobChanged(running, requeued);
    m.jobChanged(requeued, job({ ...requeued, state: 'assigned', attempt: 2, assignedAt: T0 + 12_000 }));

    const dispatch = await values(m, 'rbtk_dispatch_latency_seconds');
    const sum = dispatch.find((v) => v.metricName === 'rbtk_dispatch_latency_seconds_sum')!;
    const count = dispatch.find((v) => v.metricName === 'rbtk_dispatch_latency_seconds_count')!;
    expect(count.value).toBe(2);
    expect(sum.value).toBeCloseTo(0.25 + 2, 6);
    expect(sum.labels).toEqual({ project: 'default', pool: 'build' });
    const wait = await values(m, 'rbtk_queue_wait_seconds');
    expect(wait.find((v) => v.metricName === 'rbtk_queue_wait_seconds_sum')!.value).toBeCloseTo(0.4, 6);
  });

  it('count 401s by source and reason, and nothing else', async () => {
    const m = metricsWith();
    m.apiRequestFailed(new ApiAuthError('unknown_token', 'API token is unknown'));
    m.apiRequestFailed(new ApiAuthError('revoked_token', 'API token x was revoked', 'token_revoked'));
    m.apiRequestFailed(new MetricsAuthError('wrong_token', 'wrong metrics token'));
    m.apiRequestFailed(new RbtkError('token_expired', 'expired'));
    m.apiRequestFailed(new RbtkError('forbidden', 'not yours'));
    m.apiRequestFailed(new Error('boom'));
    m.authFailed('runner', 'revoked_token');
    const failures = await values(m, 'rbtk_auth_failures_total');
    expect(failures).toEqual(
      expect.arrayContaining([
        { value: 1, labels: { source: 'api', reason: 'unknown_token' } },
        { value: 1, labels: { source: 'api', reason: 'token_expired' } },
        { value: 1, labels: { source: 'api', reason: 'revoked_token' } },
        { value: 1, labels: { source: 'metrics', reason: 'wrong_token' } },
        { value: 1, labels: { source: 'runner', reason: 'revoked_token' } },
      ]),
    );
    expect(failures).toHaveLength(5);
  });
});
