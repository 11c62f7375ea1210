import type Docker from 'dockerode';
import { LABELS } from './container-labels.js';
import { removeOnce } from './docker-removal.js';

export interface LeftoverContainer {
  id: string;
  name: string;
  jobId: string;
  attempt: number;
  /**
   * It had not exited: its attempt was running when the previous run died. An
   * exited one may be a container whose removal a previous run gave up on
   * (dockerd down) after its result was reported.
   */
  running: boolean;
  /** Why it could not be removed now (Docker's words); absent once it is gone. */
  error?: string;
}

/**
 * Removes every container labelled as this runner's (running or not): after a
 * restart nobody watches them. One that cannot be removed does not stop the
 * others. Returns them all, with `error` on those still there. Throws only
 * when the Engine cannot list them.
 */
export async function cleanupLeftovers(docker: Docker, runnerId: string): Promise<LeftoverContainer[]> {
  const found = await docker.listContainers({ all: true, filters: { label: [`${LABELS.runner}=${runnerId}`] } });
  const swept: LeftoverContainer[] = [];
  for (const info of found) {
    const attempt = Number(info.Labels[LABELS.attempt]);
    const leftover: LeftoverContainer = {
      id: info.Id,
      name: (info.Names[0] ?? '').replace(/^\//, ''),
      jobId: info.Labels[LABELS.job] ?? '',
      attempt: Number.isInteger(attempt) && attempt > 0 ? attempt : 0,
      running: info.State !== 'exited' && info.State !== 'dead',
    };
    const tried = await removeOnce(docker.getContainer(info.Id));
    swept.push(tried.gone ? leftover : { ...leftover, error: tried.message });
  }
  return swept;
}
