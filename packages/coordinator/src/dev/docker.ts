import { pingAbortable, withDeadline } from '../hosted/docker-timeouts.js';

/**
 * Whether a Docker Engine answers a ping (DOCKER_HOST, else /var/run/docker.sock,
 * docker-modem's own rules, the same the runner uses) within timeoutMs.
 */
export async function dockerReachable(timeoutMs = 3000): Promise<{ ok: boolean; reason?: string }> {
  // Loaded here, not at the top: every `rbtk-coordinator` command imports the dev command.
  const docker = new (await import('dockerode')).default();
  try {
    // Aborted at the deadline: an Engine that accepts the connection and never answers must not hold the process open.
    await withDeadline('ping', timeoutMs, (abortSignal) => pingAbortable(docker, abortSignal));
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}
