import type Docker from 'dockerode';
import type { RunnerConfig } from '@rbtk/protocol/runner';
import { ConfigError } from '../errors.js';
import { dockerMessage, hasStatus } from './docker-error.js';

/** How long an answer is trusted: a network removed and created again under its name (not internal now) is seen within this. */
const CACHE_MS = 60_000;

/** What Docker said about a network: internal or not, or why it could not tell (no such network, no answer). */
type Inspection = { internal: boolean } | { refusal: string; retryable: boolean };

/** Why a job may not run here; retryable when the cause may pass (dockerd did not answer). */
export interface NetworkRefusal {
  reason: string;
  retryable: boolean;
}

/**
 * Whether an air-gapped runner may put job containers on a Docker network:
 * `none`, or a network created with `--internal` (no route beyond the host).
 * `bridge` and any other network NAT out: a pool's --docker-network or
 * runner.yaml's docker_network naming one would open the air gap. What Docker
 * says about a network is kept per name for a minute; a missing network or a
 * failed inspection is asked again next time.
 */
export class InternalNetworkCheck {
  private readonly kept = new Map<string, { internal: boolean; at: number }>();

  constructor(
    private readonly docker: Docker,
    private readonly now: () => number = Date.now,
  ) {}

  /** Why a job container may not join `network`, or undefined when it may. */
  async refusal(network: string): Promise<NetworkRefusal | undefined> {
    if (network === 'none') return undefined;
    const kept = this.kept.get(network);
    let internal = kept && this.now() - kept.at < CACHE_MS ? kept.internal : undefined;
    if (internal === undefined) {
      const found = await inspectNetwork(this.docker, network);
      if ('refusal' in found) return { reason: found.refusal, retryable: found.retryable };
      internal = found.internal;
      this.kept.set(network, { internal, at: this.now() });
    }
    return internal ? undefined : { reason: notInternal(network), retryable: false };
  }
}

/**
 * At start, on an air-gapped runner: runner.yaml's docker_network must be
 * `none` or internal. One that Docker shows is not internal is a bad config
 * (ConfigError, exit 78); when Docker cannot tell yet (no such network, no
 * answer) the warning returned is logged and each job is checked instead.
 */
export async function checkAirgappedNetwork(
  config: Pick<RunnerConfig, 'airgapped' | 'executors' | 'docker_network'>,
  configPath: string,
  docker?: Docker,
): Promise<string | undefined> {
  const network = config.docker_network;
  if (!config.airgapped || !config.executors.includes('docker') || network === undefined || network === 'none') return undefined;
  // Loaded only here: a runner without this setting never loads dockerode for it.
  const found = await inspectNetwork(docker ?? new (await import('dockerode')).default(), network);
  if ('refusal' in found) return `${found.refusal}; jobs are refused until it is`;
  if (!found.internal) throw new ConfigError(configPath, notInternal(network), 'docker_network');
  return undefined;
}

async function inspectNetwork(docker: Docker, network: string): Promise<Inspection> {
  // container:<id> shares another container's network stack, whose reach the runner cannot vouch for.
  if (network.startsWith('container:')) return { internal: false };
  try {
    const info = (await docker.getNetwork(network).inspect()) as { Internal?: boolean };
    return { internal: info.Internal === true };
  } catch (err) {
    if (hasStatus(err, 404)) {
      return { refusal: `air-gapped runner: docker network ${network} does not exist (docker network create --internal ${network})`, retryable: false };
    }
    return { refusal: `air-gapped runner: cannot tell whether docker network ${network} is internal: ${dockerMessage(err)}`, retryable: true };
  }
}

function notInternal(network: string): string {
  return `air-gapped runner: docker network ${network} is not internal (docker network create --internal); its containers could reach beyond this host`;
}
