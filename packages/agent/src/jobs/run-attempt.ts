import { formatDuration, type Assign } from '@rbtk/protocol/runner';
import { failedBeforeStart, type AttemptResources, type ExecutionResult, type Executor, type StopReason } from '../executors/executor.js';
import type { Logger } from '../log.js';
import type { HeldAttempt } from './held-attempt.js';
import { LogDecoder } from './log-decoder.js';

export interface RunAttemptDeps {
  runnerId: string;
  executor: Executor;
  /** What the manager set aside for the attempt (its GPUs). */
  resources?: AttemptResources;
  logger: Logger;
  onStarted(): void;
  /** Stops the attempt through the manager (state, log line). */
  stop(reason: StopReason): void;
}

/** setTimeout fires at once beyond this; a longer timeout waits the longest it can. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Runs one accepted attempt to its end: output bytes into the spool (decoded,
 * chunked), the timeout, and the result into the spool. Never throws.
 */
export async function runAttempt(deps: RunAttemptDeps, h: HeldAttempt, assign: Assign): Promise<void> {
  const { logger } = deps;
  const spooled = h.spooled!;
  const ids = { jobId: h.jobId, attempt: h.attempt };
  const decoder = new LogDecoder();
  const startedAt = Date.now();

  let result: ExecutionResult;
  // A timer lasts at most MAX_TIMER_MS (~24.8 days): a longer timeout is armed again until its deadline.
  const deadline = Date.now() + assign.timeoutMs;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const left = deadline - Date.now();
    timer = setTimeout(
      left > MAX_TIMER_MS ? arm : () => deps.stop({ outcome: 'timed_out', message: `timed out after ${formatDuration(assign.timeoutMs)}` }),
      Math.max(0, Math.min(left, MAX_TIMER_MS)),
    );
  };
  arm();
  try {
    const execution = deps.executor.start({ runnerId: deps.runnerId, ...ids }, assign.spec.executor, {
      started: (detail) => {
        if (h.state === 'starting') h.state = 'running';
        h.hasStarted = true;
        if (detail?.pgid) spooled.updateMeta({ pgid: detail.pgid });
        logger.info({ ...ids, ...detail }, 'job started');
        deps.onStarted();
      },
      output: (stream, data) => spooled.append(decoder.write(stream, data)),
    }, undefined, deps.resources);
    h.execution = execution;
    // A cancel that arrived while the spool was being created.
    if (h.stopReason) execution.stop(h.stopReason);
    result = await execution.wait();
  } catch (err) {
    result = failedBeforeStart(`the ${assign.spec.executor.type} executor failed: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  spooled.append(decoder.end());
  h.state = 'finished';
  const level = result.outcome === 'succeeded' ? 'info' : 'warn';
  logger[level](
    {
      ...ids,
      outcome: result.outcome,
      exitCode: result.exitCode,
      message: result.message,
      ...(result.oomKilled ? { oomKilled: true } : {}),
      logBytes: spooled.logBytes,
      durationMs: Date.now() - startedAt,
    },
    'job finished', // one message for every end, so a log query finds them all; oomKilled and message say why
  );
  try {
    const { outcome, exitCode, message } = result;
    await spooled.finish({ outcome, exitCode, ...(message !== undefined ? { message } : {}) });
  } catch (err) {
    logger.error({ ...ids, err: (err as Error).message }, 'could not write the job result to the spool');
  }
}
