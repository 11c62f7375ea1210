import type { Execution, StopReason } from '../executors/executor.js';
import type { SpooledAttempt } from './spool.js';

/** Where an attempt this runner holds stands, as the control socket shows it. */
export type AttemptState = 'starting' | 'running' | 'stopping' | 'finished';

export interface JobStatus {
  jobId: string;
  attempt: number;
  state: AttemptState;
  /** GPU uuids the attempt holds while it runs; absent when none. */
  gpus?: string[];
}

/** The manager's bookkeeping for one attempt, from accept until its result is acknowledged. */
export interface HeldAttempt {
  jobId: string;
  attempt: number;
  state: AttemptState;
  /** GPU uuids held from accept until the attempt ends. */
  gpus?: string[];
  /** Set once the spool directory exists (right before accept). */
  spooled?: SpooledAttempt;
  execution?: Execution;
  /** A stop asked for before the execution existed. */
  stopReason?: StopReason;
  /** Resolves when the attempt has ended and its result is spooled. */
  done?: Promise<void>;
  /** The executor said the container or process runs. */
  hasStarted: boolean;
  /** Frames of this connection: what was sent, so a reconnect resends only the rest. */
  acceptSent: boolean;
  startedSent: boolean;
  sentUpTo: number;
  resultSent: boolean;
}

export const attemptKey = (jobId: string, attempt: number) => `${jobId}#${attempt}`;
