import type { DaemonState } from '../daemon-state.js';
import type { DrainControl } from '../drain.js';
import type { Logger } from '../log.js';
import { ControlError, type ControlHandlers } from './server.js';

/** Why `rbtk-runner drain` stops the runner taking jobs. */
export const HOST_DRAIN_REASON = 'drained on the host (rbtk-runner drain)';

/** What `rbtk-runner status`, `drain` and `resume` ask of the daemon. */
export function daemonControlHandlers(state: DaemonState, drain: DrainControl, logger: Logger): ControlHandlers {
  return {
    status: () => state.snapshot(),
    drain: () => {
      if (drain.drain('host', HOST_DRAIN_REASON)) logger.info({ reason: HOST_DRAIN_REASON }, 'draining: no new jobs');
      return state.snapshot();
    },
    resume: () => {
      const resumed = drain.resume();
      if (!resumed.ok) throw new ControlError(409, 'conflict', resumed.reason);
      if (resumed.changed) logger.info('resumed: taking jobs again');
      return state.snapshot();
    },
  };
}
