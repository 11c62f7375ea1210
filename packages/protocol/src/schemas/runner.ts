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

/** Opaque and client-made (rbtk-runner sends a UUID); only compared for equality. */
export const RegistrationId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{16,64}$/, 'a registration id is 16 to 64 characters of A-Z, a-z, 0-9, _ and -');

/** Body of POST /v1/runners/register (the registration token goes in Authorization). */
export const RegisterRequest = z
  .object({
    name: RunnerName,
    labels: Labels.default({}),
    airgapped: z.boolean().default(false),
    agentVersion: z.string().max(64).optional(),
    host: HostFacts.optional(),
    /**
     * The client's own id for this one registration, sent again unchanged on
     * each retry: a retry whose first answer was lost gets the same runner
     * (with a fresh token) instead of spending another use. Optional, for
     * agents that predate it.
     */
    registrationId: RegistrationId.optional(),
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
