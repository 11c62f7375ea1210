import { CloseCode, coerceError } from '@rbtk/protocol';
import { auditRow, SYSTEM_ACTOR } from './audit.js';
import type { Logger } from './log.js';
import { sleep, withJitter } from './sleep.js';
import type { Store } from './store/store.js';
import type { SessionRegistry } from './ws/sessions.js';

export interface LivenessDeps {
  store: Store;
  sessions: SessionRegistry;
  log: Logger;
  offlineAfterMs: number;
  reapAfterMs: number;
  /** Epoch milliseconds; tests pass a fake clock. */
  now: () => number;
  /**
   * When this coordinator began to hear heartbeats (epoch ms; the loop sets
   * its start). Silence is counted from here at the earliest: heartbeats sent
   * while it was down (an upgrade, a reboot) never arrived, and the runners'
   * reconnects are spread over their backoff. Without it, a restart after a
   * minute down marked every runner OFFLINE at the first tick and failed
   * their jobs (runner_lost) while they ran on.
   */
  watchingSince?: number;
  /** Called for each runner just marked OFFLINE: its jobs are requeued as runner_lost. */
  onOffline?: (runnerId: string) => Promise<void>;
  /**
   * Runners whose onOffline failed (the store refused: a full disk), tried
   * again on each tick until it succeeds: the OFFLINE mark is committed, so
   * markOffline will not name them again.
   */
  offlineRetries?: Set<string>;
  /** Called after runners were reaped (routing forgets what they could run). */
  onReaped?: () => void;
}

export interface LivenessResult {
  markedOffline: string[];
  reaped: string[];
}

/** The tick: often enough that OFFLINE shows within a quarter of the threshold, at most once a second. */
export function livenessInterval(offlineAfterMs: number): number {
  return Math.max(1, Math.min(1000, Math.floor(offlineAfterMs / 4)));
}

/**
 * One pass: runners whose last heartbeat is offlineAfter old become OFFLINE,
 * open TCP connection or not (a hung agent keeps its socket); runners silent
 * for reapAfter are deleted with an audit row, and their socket, if any, closed.
 */
export async function livenessTick(deps: LivenessDeps): Promise<LivenessResult> {
  const now = deps.now();
  const heardFor = deps.watchingSince === undefined ? Infinity : now - deps.watchingSince;
  const markedOffline = heardFor >= deps.offlineAfterMs ? await deps.store.runners.markOffline(now - deps.offlineAfterMs) : [];
  for (const id of markedOffline) deps.log.info({ runnerId: id }, 'runner offline');
  for (const id of new Set([...(deps.offlineRetries ?? []), ...markedOffline])) {
    try {
      await deps.onOffline?.(id);
      deps.offlineRetries?.delete(id);
    } catch (err) {
      deps.offlineRetries?.add(id);
      deps.log.error({ err: coerceError(err), runnerId: id }, 'requeue of an offline runner\'s jobs failed: trying again next tick');
    }
  }

  const reaped: string[] = [];
  const before = now - deps.reapAfterMs;
  // Likewise: a coordinator back after a long outage does not delete every runner that could not reach it.
  for (const runner of heardFor >= deps.reapAfterMs ? await deps.store.runners.listSilent(before) : []) {
    const silentSince = runner.lastHeartbeatAt ?? runner.registeredAt;
    const audit = auditRow({
      at: now,
      actor: SYSTEM_ACTOR,
      action: 'runner.reap',
      resourceType: 'runner',
      resourceId: runner.id,
      project: runner.project,
      details: { name: runner.name, pool: runner.poolName, silentSince: new Date(silentSince).toISOString() },
    });
    if (await deps.store.runners.reap(runner.id, before, audit)) {
      reaped.push(runner.id);
      deps.sessions.close(runner.id, CloseCode.Revoked, 'runner reaped');
      deps.log.info({ runnerId: runner.id, pool: runner.poolName, project: runner.project }, 'runner reaped');
    }
  }
  if (reaped.length > 0) deps.onReaped?.();
  // Revoked-token tombstones only need to outlive any agent still retrying with them.
  await deps.store.runnerTokens.pruneRevoked(before);
  return { markedOffline, reaped };
}

/**
 * Marks OFFLINE and reaps until the signal aborts; a failed tick is logged and retried next tick.
 * Ticks start 80-90% of the interval apart, counted from the previous start, so however long a
 * tick takes a runner is marked OFFLINE within one interval (1 s) of crossing --offline-after.
 */
export async function runLivenessLoop(deps: LivenessDeps, signal: AbortSignal): Promise<void> {
  const interval = livenessInterval(deps.offlineAfterMs);
  deps = { offlineRetries: new Set(), watchingSince: deps.now(), ...deps };
  let startedAt = performance.now();
  while (!signal.aborted) {
    await sleep(Math.max(0, startedAt + withJitter(interval * 0.85, 0.05) - performance.now()), signal);
    if (signal.aborted) return;
    startedAt = performance.now();
    try {
      await livenessTick(deps);
    } catch (err) {
      deps.log.error({ err: coerceError(err) }, 'liveness tick failed');
    }
  }
}
