import Docker from 'dockerode';
import { ensureTestImage, TEST_IMAGE } from './docker.js';

export const MiB = 2 ** 20;

/**
 * A shell that doubles a string until it holds 64 MiB, then says so: over an
 * 8m limit the OOM killer ends it, and on an engine that does not enforce
 * limits it stops by itself instead of eating the host. It waits half a second
 * first: containerd watches a container for OOM kills only once it runs, and
 * one in its first few milliseconds goes unreported (State.OOMKilled false
 * about one time in eight on the test engine, never after a short wait).
 */
export const GROW_TO_64M = 'sleep 0.5; x=a; i=0; while [ $i -lt 26 ]; do x=$x$x; i=$((i+1)); done; echo grew to 64 MiB';

export type MemoryLimitSupport = { enforced: true } | { enforced: false; reason: string };

/**
 * Ground truth, asked of the Engine directly: does a container over its memory
 * limit get OOM-killed, and does the Engine say so (State.OOMKilled)? Not every
 * engine can (no memory cgroup controller, rootless dockerd without cgroup
 * delegation).
 */
export async function memoryLimitSupport(docker: Docker = new Docker()): Promise<MemoryLimitSupport> {
  await ensureTestImage(docker);
  const info = (await docker.info()) as { MemoryLimit?: boolean; CgroupVersion?: string };
  if (info.MemoryLimit === false) return { enforced: false, reason: 'the engine has no memory cgroup (docker info: MemoryLimit false)' };
  // Twice: one miss (see GROW_TO_64M) is the engine's race, not a lack of support.
  let last = '';
  for (let i = 0; i < 2; i++) {
    const c = await docker.createContainer({
      Image: TEST_IMAGE,
      Cmd: ['sh', '-c', GROW_TO_64M],
      Labels: { 'rbtk.probe': 'memory' },
      HostConfig: { NetworkMode: 'none', Memory: 8 * MiB, MemorySwap: 8 * MiB },
    });
    try {
      await c.start();
      await c.wait();
      const { State } = await c.inspect();
      if (State.OOMKilled) return { enforced: true };
      last = `exit ${State.ExitCode}`;
    } finally {
      await c.remove({ force: true }).catch(() => undefined);
    }
  }
  return { enforced: false, reason: `a container grown to 64 MiB under an 8m limit was not reported OOM-killed (${last}, cgroup v${info.CgroupVersion ?? '?'})` };
}

/**
 * Whether the OOM tests run here. Unlike a missing engine (required under CI),
 * an engine that cannot enforce memory limits is a property of the host, not a
 * fault of rbtk: those tests skip, even under CI, with a line saying why.
 */
export async function requireMemoryLimits(what: string, docker: Docker = new Docker()): Promise<boolean> {
  const support = await memoryLimitSupport(docker);
  if (support.enforced) return true;
  console.warn(`SKIPPING ${what}: this Docker Engine does not enforce memory limits: ${support.reason}`);
  return false;
}
