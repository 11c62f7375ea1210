import type { ExecutorSpec, LogStream, Outcome } from '@rbtk/protocol/runner';

/** Which attempt an executor runs: names its container or process group. */
export interface AttemptRef {
  runnerId: string;
  jobId: string;
  attempt: number;
}

/** What the runner set aside for one attempt. */
export interface AttemptResources {
  /** GPU uuids this attempt holds (docker: its device request); empty or absent: none. */
  gpuIds?: readonly string[];
  /** The Docker network the pool lets its containers join; absent: the executor's own (runner.yaml docker_network, else none). */
  network?: string;
}

/** Where an executor puts what happens: raw output bytes, in the order they arrived. */
export interface ExecutionSink {
  /** The container or process is running (the manager sends `started`); a shell job says its process group. */
  started(detail?: { pgid?: number }): void;
  output(stream: LogStream, data: Buffer): void;
}

/** Why an attempt is stopped before it ends by itself; becomes the result's outcome and message. */
export interface StopReason {
  outcome: Extract<Outcome, 'cancelled' | 'timed_out'>;
  message: string;
}

export interface ExecutionResult {
  outcome: Outcome;
  /** The process's exit code; 128 + signal number when a signal killed it; null when it never ran. */
  exitCode: number | null;
  /** Why, for anything but success. */
  message?: string;
  /** Docker: the kernel's OOM killer ended the container (the message says so too); for the log line. */
  oomKilled?: boolean;
}

/** One running attempt. stop() may be called at any time and more than once; the first reason wins. */
export interface Execution {
  wait(): Promise<ExecutionResult>;
  stop(reason: StopReason): void;
  /**
   * After wait(): resolves true once nothing of the attempt is left outside
   * this process (docker: its container is removed, retried while dockerd is
   * down), false when that could not be confirmed (gave up, or `signal`
   * aborted as the daemon stops). What the attempt holds (its GPUs) is kept
   * until then. Absent: nothing outlives wait() (shell).
   */
  cleanup?(signal: AbortSignal): Promise<boolean>;
}

/**
 * Runs one attempt of a job. start() returns at once; everything that can go
 * wrong (missing image, spawn failure) ends up in wait()'s result, never as a
 * throw, so the manager has one path for every outcome. Aborting the signal is
 * stop() with the signal's reason (a StopReason), or "cancelled".
 */
export interface Executor {
  /**
   * Why this runner will not run the job, asked before it is accepted (the manager rejects
   * it: not retryable shuts this runner out of the job). Absent or undefined: it may.
   */
  refusal?(spec: ExecutorSpec, resources?: AttemptResources): Promise<{ reason: string; retryable: boolean } | undefined>;
  start(attempt: AttemptRef, spec: ExecutorSpec, sink: ExecutionSink, signal?: AbortSignal, resources?: AttemptResources): Execution;
}

/** The result of a process that exited by itself, or was stopped for `stopped`. */
export function resultOf(exitCode: number | null, stopped: StopReason | undefined): ExecutionResult {
  if (stopped) return { outcome: stopped.outcome, exitCode, message: stopped.message };
  if (exitCode === 0) return { outcome: 'succeeded', exitCode };
  return { outcome: 'failed', exitCode, message: exitCode === null ? 'the job ended without an exit code' : `exited with code ${exitCode}` };
}

/** A failure before anything ran (no image, no such program): failed, no exit code. */
export function failedBeforeStart(message: string): ExecutionResult {
  return { outcome: 'failed', exitCode: null, message };
}

/** The StopReason an aborted signal carries. */
export function stopReasonOf(signal: AbortSignal): StopReason {
  const reason = signal.reason as Partial<StopReason> | undefined;
  if (reason && (reason.outcome === 'cancelled' || reason.outcome === 'timed_out') && typeof reason.message === 'string') {
    return { outcome: reason.outcome, message: reason.message };
  }
  return { outcome: 'cancelled', message: 'cancelled' };
}

/** Container names and spool directories allow fewer characters than job ids. */
export function safeName(jobId: string): string {
  return jobId.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** `rbtk-<jobId>-<attempt>`: one container per attempt. */
export function containerName(ref: Pick<AttemptRef, 'jobId' | 'attempt'>): string {
  return `rbtk-${safeName(ref.jobId)}-${ref.attempt}`;
}

/** Stops an execution when the signal aborts (at once if it already has). */
export function stopOnAbort(execution: Execution, signal: AbortSignal | undefined): void {
  if (!signal) return;
  if (signal.aborted) execution.stop(stopReasonOf(signal));
  else signal.addEventListener('abort', () => execution.stop(stopReasonOf(signal)), { once: true });
}
