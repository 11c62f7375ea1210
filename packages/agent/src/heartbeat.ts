import type { Heartbeat } from '@rbtk/protocol/runner';
import { sleep } from './sleep.js';

export interface HeartbeatDeps {
  /** Sends one frame; false once the session is closed. */
  send(message: Heartbeat): boolean;
  /** The current interval: from welcome, then from each heartbeat_ack. */
  intervalMs(): number;
  /** When the coordinator last answered (ms since epoch); the welcome counts. */
  lastAckAt(): number;
  /** No answer for this long means the connection is dead even if TCP looks open (see staleAfter). */
  staleAfterMs(): number;
  onSent?(seq: number): void;
  /** The loop ends on a failed heartbeat: unanswered (no_ack) or unsendable (send_failed). */
  onFailed?(reason: 'no_ack' | 'send_failed'): void;
  random?: () => number;
}

export type HeartbeatLoopEnd = 'aborted' | 'closed' | 'stale';

/** Up to 10% early, never late: jitter spreads a fleet without risking the offline threshold. */
export function heartbeatDelay(intervalMs: number, random: () => number = Math.random): number {
  return Math.max(1, Math.round(intervalMs * (1 - 0.1 * random())));
}

/** What a reconnect needs before the coordinator's offlineAfter: the first backoff (< 500 ms) and the handshake. */
const RECONNECT_RESERVE_MS = 1_000;
/** A loaded host or coordinator may answer this late without costing a reconnect. */
const MIN_STALE_MS = 2_000;

/**
 * How long without an answer before the runner drops its connection. The
 * coordinator marks it OFFLINE, and requeues its jobs, offlineAfter after the
 * last heartbeat it heard: a half-open connection (a NAT or firewall that
 * dropped the flow) must be noticed and replaced before that, with an interval
 * and a reconnect to spare. 2.5 intervals (two lost acks, 2 s at least) when
 * that fits; never under 1.5 intervals, which a healthy link may take.
 */
export function staleAfter(intervalMs: number, offlineAfterMs: number): number {
  const wanted = Math.max(2.5 * intervalMs, MIN_STALE_MS);
  return Math.max(1.5 * intervalMs, Math.min(wanted, offlineAfterMs - intervalMs - RECONNECT_RESERVE_MS));
}

/** Staleness is looked at four times an interval, so it is noticed within a quarter interval of staleAfter. */
export function staleCheckEvery(intervalMs: number): number {
  return Math.max(10, Math.round(intervalMs / 4));
}

/**
 * Sends `heartbeat {seq}` every interval until the signal aborts or the session
 * closes. Returns 'stale' when the coordinator stopped answering, so the caller
 * can drop the connection and reconnect.
 */
export async function runHeartbeatLoop(deps: HeartbeatDeps, signal: AbortSignal): Promise<HeartbeatLoopEnd> {
  let seq = 0;
  let dueAt = Date.now() + heartbeatDelay(deps.intervalMs(), deps.random);
  // Staleness counts from here at the earliest (moved on after a freeze).
  let judgeFrom = Number.NEGATIVE_INFINITY;
  for (;;) {
    const interval = deps.intervalMs();
    const wait = Math.max(1, Math.min(dueAt - Date.now(), staleCheckEvery(interval)));
    const sleptFrom = Date.now();
    if (!(await sleep(wait, signal))) return 'aborted';
    const now = Date.now();
    const staleMs = deps.staleAfterMs();
    // A process that was frozen (SIGSTOP, suspend) has not read the acks waiting in its socket
    // yet: the coordinator gets a full stale window to answer the heartbeat sent on waking.
    if (now - sleptFrom - wait > staleMs / 2) judgeFrom = now;
    if (now - Math.max(deps.lastAckAt(), judgeFrom) > staleMs) {
      deps.onFailed?.('no_ack');
      return 'stale';
    }
    if (now < dueAt) continue;
    if (!deps.send({ type: 'heartbeat', seq })) {
      deps.onFailed?.('send_failed');
      return 'closed';
    }
    deps.onSent?.(seq);
    seq++;
    dueAt = now + heartbeatDelay(interval, deps.random);
  }
}
