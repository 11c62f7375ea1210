import { createHash } from 'node:crypto';
import type { HostedPoolSpec } from '@rbtk/protocol';

/**
 * What a member was made from: provider, image, executors (its runner
 * config) and the agent it runs. Sizing and timing fields are left out:
 * changing the target or a TTL must not recycle every member, nor a mode
 * change (members are stopped or started to match it).
 */
export function specHash(spec: HostedPoolSpec, agent: string): string {
  const made = { provider: spec.provider, image: spec.image, executors: [...spec.executors].sort(), agent };
  return createHash('sha256').update(JSON.stringify(made)).digest('hex').slice(0, 16);
}
