import { z } from 'zod';

/** Host facts an agent reports in registration and hello (systeminformation). */
export const HostFacts = z.object({
  hostname: z.string().max(255),
  os: z.string().max(255),
  arch: z.string().max(64),
  cpus: z.number().int().nonnegative(),
  memoryBytes: z.number().nonnegative(),
});
export type HostFacts = z.infer<typeof HostFacts>;
