import type { DaemonState } from '../daemon-state.js';
import type { HostDrainFile } from '../drain-file.js';
import { HOST_DRAIN_REASON, type DrainControl } from '../drain.js';
import type { Logger } from '../log.js';
import { ControlError, type ControlHandlers } from './server.js';

export { HOST_DRAIN_REASON } from '../drain.js';

/**
 * What `rbtk-runner status`, `drain` and `resume` ask of the daemon. With
 * `kept`, a host drain outlives a restart: drain answers once it is on disk,
 * resume once it is gone from there.
 */
export function daemonControlHandlers(state: DaemonState, drain: DrainControl, logger: Logger, kept?: HostDrainFile): ControlHandlers {
  return {
    status: () => state.snapshot(),
    drain: async () => {
      if (drain.drain('host', HOST_DRAIN_REASON)) logger.info({ reason: HOST_DRAIN_REASON }, 'draining: no new jobs');
      // Kept even under a stop or an upgrade, which outrank it in memory: the host wants no jobs after the restart either.
      const local = drain.localDrain;
      const info = local?.source === 'host' ? local : { source: 'host' as const, reason: HOST_DRAIN_REASON, since: new Date().toISOString() };
      try {
        await kept?.save(info);
      } catch (err) {
        logger.error({ err: (err as Error).message, path: kept?.path }, 'cannot keep the drain on disk: a restart takes jobs again');
        throw new ControlError(500, 'not_durable', `drained, but only until rbtk-runner restarts: cannot write ${kept?.path}: ${(err as Error).message}`);
      }
      return state.snapshot();
    },
    resume: async () => {
      const resumed = drain.resume();
      if (!resumed.ok) throw new ControlError(409, 'conflict', resumed.reason);
      if (resumed.changed) logger.info('resumed: taking jobs again');
      try {
        await kept?.clear();
      } catch (err) {
        logger.error({ err: (err as Error).message, path: kept?.path }, 'cannot remove the kept drain: a restart drains again');
        throw new ControlError(500, 'not_durable', `resumed, but only until rbtk-runner restarts: cannot remove ${kept?.path}: ${(err as Error).message}`);
      }
      return state.snapshot();
    },
  };
}
