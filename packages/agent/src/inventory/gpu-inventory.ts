import type Docker from 'dockerode';
import type { GpuInventory } from '@rbtk/protocol/runner';
import { checkDockerGpuSupport, type GpuSupportOptions } from './gpu-docker.js';
import { readGpus, type ReadGpusOptions } from './gpus.js';

export interface GpuInventoryOptions extends ReadGpusOptions, GpuSupportOptions {
  /** Without Docker (shell-only runners) GPUs are never usable: only containers get them. */
  docker?: Docker;
}

/**
 * The inventory the runner advertises: nvidia-smi's GPUs, and whether Docker
 * can hand them to containers. Computed once at start (both answers change
 * only when drivers or dockerd are reinstalled, which restarts the runner).
 */
export async function collectGpuInventory(options: GpuInventoryOptions = {}): Promise<{ inventory: GpuInventory; warnings: string[] }> {
  const { warnings, ...report } = await readGpus(options);
  if (report.gpus.length === 0) return { inventory: { ...report, usable: false }, warnings };
  if (!options.docker) {
    return { inventory: { ...report, usable: false, reason: 'the docker executor is not enabled: only containers get GPUs' }, warnings };
  }
  const support = await checkDockerGpuSupport(options.docker, report.gpus.map((g) => g.uuid), options);
  return { inventory: { ...report, ...support }, warnings };
}
