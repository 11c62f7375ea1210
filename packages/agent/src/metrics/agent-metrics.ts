import { Outcome } from '@rbtk/protocol/runner';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { DaemonState } from '../daemon-state.js';

/** Why a heartbeat failed: no ack within the stale threshold, or the socket would not take it. */
export type HeartbeatFailure = 'no_ack' | 'send_failed';

const HEARTBEAT_FAILURES: readonly HeartbeatFailure[] = ['no_ack', 'send_failed'];

/**
 * The runner's Prometheus metrics, in a registry of its own. Connection,
 * reconnects, rotations and running jobs are read from the DaemonState when
 * scraped (it counts them already); finished jobs and heartbeat failures are
 * counted where they happen.
 */
export class AgentMetrics {
  readonly registry = new Registry();
  private readonly jobs: Counter<'result'>;
  private readonly heartbeatFailures: Counter<'reason'>;

  constructor(private readonly state: DaemonState) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    const connected: Gauge = new Gauge({
      name: 'rbtk_runner_connected',
      help: '1 while the runner holds a welcomed session with the coordinator',
      registers,
      collect: () => connected.set(state.snapshot().connected ? 1 : 0),
    });
    const running: Gauge = new Gauge({
      name: 'rbtk_runner_jobs_running',
      help: 'Job attempts starting, running or stopping on this runner',
      registers,
      collect: () => running.set(state.snapshot().jobs.filter((j) => j.state !== 'finished').length),
    });
    const reconnects: Counter = new Counter({
      name: 'rbtk_runner_reconnects_total',
      help: 'Reconnect attempts after a session ended or a connect failed',
      registers,
      collect: () => setCounter(reconnects, state.snapshot().reconnects),
    });
    const rotations: Counter = new Counter({
      name: 'rbtk_runner_token_rotations_total',
      help: 'Rotated runner tokens saved to runner.yaml and confirmed',
      registers,
      collect: () => setCounter(rotations, state.snapshot().rotations),
    });
    this.jobs = new Counter({
      name: 'rbtk_runner_jobs_total',
      help: 'Job attempts finished on this runner, by result',
      labelNames: ['result'],
      registers,
    });
    this.heartbeatFailures = new Counter({
      name: 'rbtk_runner_heartbeat_failures_total',
      help: 'Heartbeats that failed: no_ack (the coordinator stopped answering) or send_failed (the socket was closed)',
      labelNames: ['reason'],
      registers,
    });
    // Every series from the start, so rate() sees the first increase.
    for (const result of Outcome.options) this.jobs.inc({ result }, 0);
    for (const reason of HEARTBEAT_FAILURES) this.heartbeatFailures.inc({ reason }, 0);
  }

  jobFinished(result: Outcome): void {
    this.jobs.inc({ result });
  }

  heartbeatFailed(reason: HeartbeatFailure): void {
    this.heartbeatFailures.inc({ reason });
  }

  /** /readyz: ready while connected to the coordinator; otherwise why not. */
  readiness(): { ready: boolean; body: Record<string, unknown> } {
    const s = this.state.snapshot();
    if (s.connected) return { ready: true, body: { ok: true, connected: true, status: s.status, since: s.since } };
    const reason = s.lastError ?? 'not connected to the coordinator yet';
    return { ready: false, body: { ok: false, connected: false, reason, since: s.since } };
  }
}

/** A counter that mirrors a count kept elsewhere. */
function setCounter(counter: Counter, value: number): void {
  counter.reset();
  counter.inc(value);
}
