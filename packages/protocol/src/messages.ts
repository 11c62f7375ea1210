import { z } from 'zod';
import { parseFrame } from './frame.js';
import {
  Accept,
  Assign,
  CancelAttempt,
  COORDINATOR_JOB_MESSAGE_TYPES,
  HeldAttempt,
  LogAck,
  LogFrame,
  Reject,
  ResultAck,
  ResultFrame,
  RUNNER_JOB_MESSAGE_TYPES,
  Started,
} from './job-messages.js';
import { AgentVersion } from './agent-version.js';
import { Id, Labels, Name, RunnerName, Timestamp } from './schemas/common.js';
import { GpuInventory } from './schemas/gpu.js';
import { HostFacts } from './schemas/host.js';
import { RunnerStatus } from './schemas/runner.js';
import { ExecutorName } from './schemas/runner-config.js';

/*
 * Messages on the runner WebSocket (`/v1/runner/ws`). Each frame is one JSON
 * object with a `type`. Declared once here; the coordinator and the agent both
 * parse incoming frames with these schemas.
 */

// ---- runner → coordinator ---------------------------------------------------

export const Capabilities = z.object({
  executors: z.array(ExecutorName),
  maxJobs: z.number().int().positive(),
  labels: Labels,
  airgapped: z.boolean(),
  /** GPUs on the host; absent from runners that predate GPU support. */
  gpus: GpuInventory.optional(),
});
export type Capabilities = z.infer<typeof Capabilities>;

/** First frame after the upgrade: who the runner is and what it can do. */
export const Hello = z.object({
  type: z.literal('hello'),
  agentVersion: z.string().max(64),
  host: HostFacts,
  capabilities: Capabilities,
  /** Attempts the runner still holds (after a reconnect or restart); the coordinator sorts stale ones out. */
  held: z.array(HeldAttempt).default([]),
  /** Present while the runner drains itself (rbtk-runner drain, stopping, a pending upgrade): why. */
  drainReason: z.string().min(1).max(1024).optional(),
});
export type Hello = z.infer<typeof Hello>;

/**
 * The runner's own drain changed: while draining it takes no new jobs and
 * lets the ones it runs finish. Sent at once; hello repeats it on a reconnect.
 */
export const RunnerDrain = z.object({
  type: z.literal('drain'),
  draining: z.boolean(),
  /** Why: "drained on the host (rbtk-runner drain)", "rbtk-runner is stopping (SIGTERM)", ... */
  reason: z.string().min(1).max(1024).optional(),
});
export type RunnerDrain = z.infer<typeof RunnerDrain>;

export const Heartbeat = z.object({
  type: z.literal('heartbeat'),
  seq: z.number().int().nonnegative(),
});
export type Heartbeat = z.infer<typeof Heartbeat>;

/**
 * Sent once a rotated token is durably in runner.yaml. Until the coordinator
 * sees this (or the new token on a connection), the old token stays valid.
 */
export const TokenConfirm = z.object({
  type: z.literal('token_confirm'),
  tokenId: Id,
});
export type TokenConfirm = z.infer<typeof TokenConfirm>;

export const RunnerMessage = z.discriminatedUnion('type', [
  Hello,
  Heartbeat,
  TokenConfirm,
  RunnerDrain,
  Accept,
  Reject,
  Started,
  LogFrame,
  ResultFrame,
]);
export type RunnerMessage = z.infer<typeof RunnerMessage>;

// ---- coordinator → runner ---------------------------------------------------

export const Welcome = z.object({
  type: z.literal('welcome'),
  runnerId: Id,
  name: RunnerName,
  pool: Name,
  project: Name,
  status: RunnerStatus,
  heartbeatIntervalMs: z.number().int().positive(),
  offlineAfterMs: z.number().int().positive(),
  serverTime: Timestamp,
  /** The oldest rbtk-runner the coordinator wants (--min-runner-version): an older one drains and exits 75. */
  minRunnerVersion: AgentVersion.optional(),
  /** The Docker network the pool lets job containers join; absent: none (NetworkMode none). */
  dockerNetwork: z.string().min(1).optional(),
});
export type Welcome = z.infer<typeof Welcome>;

export const RotatedToken = z.object({
  id: Id,
  token: z.string(),
});
export type RotatedToken = z.infer<typeof RotatedToken>;

export const HeartbeatAck = z.object({
  type: z.literal('heartbeat_ack'),
  seq: z.number().int().nonnegative(),
  status: RunnerStatus,
  heartbeatIntervalMs: z.number().int().positive(),
  /** A new runner token: write it to runner.yaml, then send token_confirm. */
  rotatedToken: RotatedToken.optional(),
  /** As in welcome. */
  minRunnerVersion: AgentVersion.optional(),
});
export type HeartbeatAck = z.infer<typeof HeartbeatAck>;

/**
 * An operator drained (or resumed) this runner or its pool: no new jobs come,
 * the running ones finish. Sent after welcome too while it holds.
 */
export const CoordinatorDrain = z.object({
  type: z.literal('drain'),
  draining: z.boolean(),
  /** "drained by an operator (rbtk runner drain)", "pool ci is draining". */
  reason: z.string().max(1024).optional(),
});
export type CoordinatorDrain = z.infer<typeof CoordinatorDrain>;

export const TokenConfirmed = z.object({
  type: z.literal('token_confirmed'),
  tokenId: Id,
});
export type TokenConfirmed = z.infer<typeof TokenConfirmed>;

/** The coordinator's answer to a frame it could not accept. */
export const ErrorMessage = z.object({
  type: z.literal('error'),
  code: z.string(),
  message: z.string(),
});
export type ErrorMessage = z.infer<typeof ErrorMessage>;

export const CoordinatorMessage = z.discriminatedUnion('type', [
  Welcome,
  HeartbeatAck,
  TokenConfirmed,
  ErrorMessage,
  CoordinatorDrain,
  Assign,
  CancelAttempt,
  LogAck,
  ResultAck,
]);
export type CoordinatorMessage = z.infer<typeof CoordinatorMessage>;

// ---- parsing ------------------------------------------------------------------

export const RUNNER_MESSAGE_TYPES = ['hello', 'heartbeat', 'token_confirm', 'drain', ...RUNNER_JOB_MESSAGE_TYPES] as const;
export const COORDINATOR_MESSAGE_TYPES = [
  'welcome',
  'heartbeat_ack',
  'token_confirmed',
  'error',
  'drain',
  ...COORDINATOR_JOB_MESSAGE_TYPES,
] as const;

export const parseRunnerMessage = (data: string) => parseFrame(RunnerMessage, RUNNER_MESSAGE_TYPES, data);
export const parseCoordinatorMessage = (data: string) =>
  parseFrame(CoordinatorMessage, COORDINATOR_MESSAGE_TYPES, data);
