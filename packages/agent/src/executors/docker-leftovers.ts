import type Docker from 'dockerode';
import { LABELS } from './container-labels.js';
import { hasStatus } from './docker-error.js';

export interface LeftoverContainer {
  id: string;
  name: string;
  jobId: string;
  attempt: number;
}

/**
 * Removes every container labelled as this runner's (running or not): after a
 * restart nobody watches them, and their attempts are reported failed instead.
 * Returns the attempts they belonged to.
 */
export async function cleanupLeftovers(docker: Docker, runnerId: string): Promise<LeftoverContainer[]> {
  const found = await docker.listContainers({ all: true, filters: { label: [`${LABELS.runner}=${runnerId}`] } });
  const removed: LeftoverContainer[] = [];
  for (const info of found) {
    try {
      await docker.getContainer(info.Id).remove({ force: true });
    } catch (err) {
      if (!hasStatus(err, 404)) throw err;
    }
    const attempt = Number(info.Labels[LABELS.attempt]);
    removed.push({
      id: info.Id,
      name: (info.Names[0] ?? '').replace(/^\//, ''),
      jobId: info.Labels[LABELS.job] ?? '',
      attempt: Number.isInteger(attempt) && attempt > 0 ? attempt : 0,
    });
  }
  return removed;
}
