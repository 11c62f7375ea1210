import type { Heartbeat } from '@rbtk/protocol/runner';
import { sleep } from './sleep.js';

export interface HeartbeatDeps {
  /** Sends one frame; false once the session is closed. */
  send(message: Heartbeat): boolean;
  /** The current interval: from welcome, then from each heartbeat_ack. */
  intervalMs(): number;
  /** When the coordinator last answered (ms since epoch); the welcome counts. */
  lastAckAt(): number;
  /** No answer for this long means the coordinator is gone even if TCP looks open. */
  staleAfterMs: number;
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

/**
 * Sends `heartbeat {seq}` every interval until the signal aborts or the session
 * closes. Returns 'stale' when the coordinator stopped answering, so the caller
 * can drop the connection and reconnect.
 */
export async function runHeartbeatLoop(deps: HeartbeatDeps, signal: AbortSignal): Promise<HeartbeatLoopEnd> {
  let seq = 0;
  for (;;) {
    const delay = heartbeatDelay(deps.intervalMs(), deps.random);
    const sleptFrom = Date.now();
    if (!(await sleep(delay, signal))) return 'aborted';
    // A process that was frozen (SIGSTOP, suspend) has not seen the acks waiting in
    // its socket yet; judge staleness on the next round, not on a wake-up.
    const overslept = Date.now() - sleptFrom - delay > deps.staleAfterMs / 2;
    if (!overslept && Date.now() - deps.lastAckAt() > deps.staleAfterMs) {
      deps.onFailed?.('no_ack');
      return 'stale';
    }
    if (!deps.send({ type: 'heartbeat', seq })) {
      deps.onFailed?.('send_failed');
      return 'closed';
    }
    deps.onSent?.(seq);
    seq++;
  }
}
