import { z } from 'zod';
import { Duration, Labels, RunnerName } from './common.js';

const HOST_PORT = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9][A-Za-z0-9.-]*)):(\d{1,5})$/;

/** `host:port` or `[ipv6]:port` split into its parts; null when it is neither or the port is past 65535. */
export function parseHostPort(text: string): { host: string; port: number } | null {
  const m = HOST_PORT.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) return null;
  return { host: m[1] ?? m[2]!, port };
}

/** An address to listen on, host included (no "all interfaces" by omission). */
export const HostPort = z
  .string()
  .refine((s) => parseHostPort(s) !== null, 'write it as HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464');

export const ExecutorName = z.enum(['docker', 'shell']);
export type ExecutorName = z.infer<typeof ExecutorName>;

/**
 * `runner.yaml`, written by `rbtk-runner register` (mode 0600) and rewritten
 * atomically on every token rotation. Keys are snake_case, as in most
 * operator-edited YAML (GitLab Runner, Buildkite agent).
 */
export const RunnerConfig = z
  .object({
    url: z.url({ protocol: /^https?$/, error: 'url must be the coordinator\'s http:// or https:// address' }),
    runner_id: z.string().min(1),
    token: z.string().min(1),
    name: RunnerName,
    pool: z.string().optional(),
    project: z.string().optional(),
    labels: Labels.default({}),
    airgapped: z.boolean().default(false),
    max_jobs: z.number().int().positive().max(1024).default(1),
    executors: z.array(ExecutorName).nonempty().default(['docker']),
    /** HostConfig.NetworkMode of job containers; "none" unless a named (internal) network is allowed. */
    docker_network: z.string().min(1).optional(),
    /** Air-gapped runners: the on-prem registry host (registry.local:5000) images may be pulled from. */
    registry: z.string().min(1).regex(/^[^\s/]+$/, 'registry is a host[:port], e.g. registry.local:5000').optional(),
    /** An image that must be on this host: `rbtk-runner doctor` checks it, and the GPU check starts it. */
    test_image: z.string().min(1).max(512).optional(),
    /** Spool, control socket and other state; must be writable by the runner. */
    state_dir: z.string().optional(),
    /** How long SIGTERM waits for in-flight jobs before stopping them. */
    shutdown_timeout: Duration.default('10m'),
    /** Serve Prometheus /metrics, /healthz and /readyz here (plain HTTP, no token); off when absent. */
    metrics_listen: HostPort.optional(),
    log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  })
  .strict();
export type RunnerConfig = z.infer<typeof RunnerConfig>;
export type RunnerConfigInput = z.input<typeof RunnerConfig>;
