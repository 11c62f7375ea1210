import { z } from 'zod';
import { Labels, Name, Timestamp } from './common.js';
import { HostedPoolCreate, HostedPoolSpec } from './hosted-pool.js';

export const PoolType = z.enum(['self-hosted', 'hosted']);
export type PoolType = z.infer<typeof PoolType>;

export const PoolStatus = z.enum(['active', 'paused', 'draining']);
export type PoolStatus = z.infer<typeof PoolStatus>;

export const RunnerCounts = z.object({
  online: z.number().int(),
  draining: z.number().int(),
  offline: z.number().int(),
});
export type RunnerCounts = z.infer<typeof RunnerCounts>;

/** A Docker network job containers may join; "host" would defeat the isolation a pool asks for. */
export const DockerNetworkName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'a Docker network name')
  .refine((n) => n !== 'host', 'job containers never join the host network');

export const Pool = z.object({
  name: Name,
  project: Name,
  type: PoolType,
  status: PoolStatus,
  tags: Labels,
  airgapped: z.boolean(),
  /** An air-gapped pool takes only jobs that require airgapped, unless this is set. */
  allowNonAirgappedJobs: z.boolean(),
  /** The (internal) Docker network its job containers join; null: none, no network at all. */
  dockerNetwork: z.string().nullable(),
  runners: RunnerCounts,
  /** A hosted pool's spec (the coordinator provisions its members); absent or null for self-hosted pools. */
  hosted: HostedPoolSpec.nullable().optional(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export type Pool = z.infer<typeof Pool>;

export const PoolCreate = z
  .object({
    name: Name,
    type: PoolType.default('self-hosted'),
    tags: Labels.default({}),
    airgapped: z.boolean().default(false),
    allowNonAirgappedJobs: z.boolean().default(false),
    dockerNetwork: DockerNetworkName.nullable().default(null),
    /** Required for type hosted, refused otherwise. */
    hosted: HostedPoolCreate.optional(),
  })
  .strict();
export type PoolCreate = z.infer<typeof PoolCreate>;
export type PoolCreateInput = z.input<typeof PoolCreate>;
