import { createHash } from 'node:crypto';
import type { HostedPoolSpec } from '@rbtk/protocol';
import { memberRunnerConfig } from './provider.js';

/** JSON with object keys sorted: the same config hashes the same whatever order its fields were given in. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => [k, canonical(v)]));
}

/**
 * What a member was made from: provider, image, the runner config every
 * member of the pool gets (executors, labels, ...: memberRunnerConfig, so
 * whatever is added there is covered), the coordinator URL its runner.yaml
 * names and the agent it runs (agentMark). Sizing and
 * timing fields are left out: changing the target or a TTL must not recycle
 * every member, nor a mode change (members are stopped or started to match it).
 */
export function specHash(spec: HostedPoolSpec, agent: string, url = ''): string {
  const runner = memberRunnerConfig(spec);
  // Executors are a set: their order is not a change.
  const made = { provider: spec.provider, image: spec.image, runner: { ...runner, executors: [...runner.executors].sort() }, agent, url };
  return createHash('sha256').update(JSON.stringify(canonical(made))).digest('hex').slice(0, 16);
}
