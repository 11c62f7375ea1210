import { z } from 'zod';
import { Id, Labels, Name, RunnerName, Timestamp } from './common.js';
import { Gpu } from './gpu.js';
import { HostFacts } from './host.js';

/**
 * ONLINE: heartbeat fresher than offline-after, may receive jobs.
 * DRAINING: connected, takes no new jobs. OFFLINE: silent for offline-after.
 */
export const RunnerStatus = z.enum(['ONLINE', 'DRAINING', 'OFFLINE']);
export type RunnerStatus = z.infer<typeof RunnerStatus>;

export const Runner = z.object({
  id: Id,
  name: RunnerName,
  pool: Name,
  project: Name,
  status: RunnerStatus,
  labels: Labels,
  airgapped: z.boolean(),
  connected: z.boolean(),
  agentVersion: z.string().nullable(),
  host: HostFacts.nullable(),
  registeredAt: Timestamp,
  lastHeartbeatAt: Timestamp.nullable(),
  /** GPUs the runner reported in its last hello. */
  gpus: z.array(Gpu).default([]),
  /** Whether Docker on the host can hand those GPUs to containers; gpuUnusableReason says why not. */
  gpuUsable: z.boolean().default(false),
  gpuUnusableReason: z.string().nullable().default(null),
  /** Why it is DRAINING (its own drain, an operator's, its pool's), or null. */
  drainReason: z.string().nullable().default(null),
});
export type Runner = z.infer<typeof Runner>;

/** Body of POST /v1/runners/register (the registration token goes in Authorization). */
export const RegisterRequest = z
  .object({
    name: RunnerName,
    labels: Labels.default({}),
    airgapped: z.boolean().default(false),
    agentVersion: z.string().max(64).optional(),
    host: HostFacts.optional(),
  })
  .strict();
export type RegisterRequest = z.infer<typeof RegisterRequest>;
export type RegisterRequestInput = z.input<typeof RegisterRequest>;

export const RegisterResponse = z.object({
  runnerId: Id,
  name: RunnerName,
  pool: Name,
  project: Name,
  token: z.string(),
  heartbeatIntervalMs: z.number().int().positive(),
});
export type RegisterResponse = z.infer<typeof RegisterResponse>;
