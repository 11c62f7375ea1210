import { z } from 'zod';
import { Labels, Name, Timestamp } from './common.js';

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

export const Pool = z.object({
  name: Name,
  project: Name,
  type: PoolType,
  status: PoolStatus,
  tags: Labels,
  airgapped: z.boolean(),
  runners: RunnerCounts,
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
  })
  .strict();
export type PoolCreate = z.infer<typeof PoolCreate>;
export type PoolCreateInput = z.input<typeof PoolCreate>;
