/**
 * Whether a Docker Engine answers a ping (DOCKER_HOST, else /var/run/docker.sock,
 * docker-modem's own rules, the same the runner uses) within timeoutMs.
 */
export async function dockerReachable(timeoutMs = 3000): Promise<{ ok: boolean; reason?: string }> {
  // Loaded here, not at the top: every `rbtk-coordinator` command imports the dev command.
  const docker = new (await import('dockerode')).default();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([docker.ping(), timeout]);
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}
