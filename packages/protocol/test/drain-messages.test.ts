import { describe, expect, it } from 'vitest';
import { AgentVersion, isBelowVersion, isNewerVersion } from '../src/agent-version.js';
import { parseCoordinatorMessage, parseRunnerMessage } from '../src/messages.js';

const hello = {
  type: 'hello',
  agentVersion: '0.1.0',
  host: { hostname: 'gpu-01', os: 'Debian 12', arch: 'x64', cpus: 16, memoryBytes: 64e9 },
  capabilities: { executors: ['docker'], maxJobs: 2, labels: {}, airgapped: false },
};
const welcome = {
  type: 'welcome',
  runnerId: 'r1',
  name: 'gpu-01',
  pool: 'ci',
  project: 'default',
  status: 'DRAINING',
  heartbeatIntervalMs: 15_000,
  offlineAfterMs: 60_000,
  serverTime: '2026-01-01T00:00:00.000Z',
};

describe('drain frames', () => {
  it('runner → coordinator: drain with its reason, resume without; hello may carry the drain', () => {
    const drain = { type: 'drain', draining: true, reason: 'rbtk-runner is stopping (SIGTERM)' };
    expect(parseRunnerMessage(JSON.stringify(drain))).toEqual({ ok: true, message: drain });
    expect(parseRunnerMessage(JSON.stringify({ type: 'drain', draining: false }))).toEqual({ ok: true, message: { type: 'drain', draining: false } });
    expect(parseRunnerMessage(JSON.stringify({ type: 'drain', draining: true, reason: '' })).ok).toBe(false);
    expect(parseRunnerMessage(JSON.stringify({ type: 'drain', draining: true, reason: 'x'.repeat(1025) })).ok).toBe(false);
    const parsed = parseRunnerMessage(JSON.stringify({ ...hello, drainReason: 'drained on the host (rbtk-runner drain)' }));
    expect(parsed).toMatchObject({ ok: true, message: { type: 'hello', drainReason: 'drained on the host (rbtk-runner drain)', held: [] } });
    expect(parseRunnerMessage(JSON.stringify(hello))).not.toHaveProperty('message.drainReason');
  });

  it('coordinator → runner: drain, and the minimum runner version in welcome and heartbeat_ack', () => {
    const drain = { type: 'drain', draining: true, reason: 'pool ci is draining' };
    expect(parseCoordinatorMessage(JSON.stringify(drain))).toEqual({ ok: true, message: drain });
    expect(parseCoordinatorMessage(JSON.stringify({ ...welcome, minRunnerVersion: '1.4.0' }))).toMatchObject({
      ok: true,
      message: { minRunnerVersion: '1.4.0' },
    });
    const ack = { type: 'heartbeat_ack', seq: 1, status: 'ONLINE', heartbeatIntervalMs: 15_000, minRunnerVersion: '2.0.0-rc.1' };
    expect(parseCoordinatorMessage(JSON.stringify(ack))).toEqual({ ok: true, message: ack });
    const bad = parseCoordinatorMessage(JSON.stringify({ ...welcome, minRunnerVersion: 'latest' }));
    expect(bad).toMatchObject({ ok: false, error: expect.stringContaining('minRunnerVersion') });
  });
});

describe('agent versions', () => {
  it('compares as semantic versions, not as text', () => {
    expect(isNewerVersion('0.10.0', '0.9.0')).toBe(true);
    expect(isNewerVersion('0.9.0', '0.9.0')).toBe(false);
    expect(isNewerVersion('1.0.0', '1.0.0-rc.2')).toBe(true);
    expect(isNewerVersion('not-a-version', '0.1.0')).toBe(false);
    expect(isBelowVersion('0.9.0', '0.10.0')).toBe(true);
    expect(isBelowVersion('0.10.0', '0.10.0')).toBe(false);
    // An agent that cannot say its version is older than any minimum; a minimum that is no version asks nothing.
    expect(isBelowVersion('dev', '0.1.0')).toBe(true);
    expect(isBelowVersion('0.1.0', 'whatever')).toBe(false);
    expect(AgentVersion.safeParse('1.4.0').success).toBe(true);
    expect(AgentVersion.safeParse('1.4').success).toBe(false);
  });
});
