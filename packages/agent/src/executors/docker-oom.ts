import type Docker from 'dockerode';
import { formatMemory } from '@rbtk/protocol/runner';

/** An exited container's end, as the Engine saw it. */
export interface ContainerEnd {
  /** The kernel's OOM killer killed a process of the container (State.OOMKilled). */
  oomKilled: boolean;
  /** HostConfig.Memory in bytes; 0: no limit. */
  memoryBytes: number;
}

/** An Engine slow to answer must not hold the result back for long. */
const INSPECT_TIMEOUT_MS = 10_000;

/**
 * Inspects an exited container. Undefined when the Engine cannot say (gone
 * meanwhile): the exit code is then all the result has.
 */
export async function inspectEnd(container: Docker.Container): Promise<ContainerEnd | undefined> {
  try {
    const info = await container.inspect({ abortSignal: AbortSignal.timeout(INSPECT_TIMEOUT_MS) });
    return { oomKilled: info.State?.OOMKilled === true, memoryBytes: info.HostConfig?.Memory ?? 0 };
  } catch {
    return undefined;
  }
}

/** A SIGKILL from the OOM killer looks like any exit 137: say what it was, and against which limit. */
export function oomMessage(memoryBytes: number): string {
  const limit = memoryBytes > 0 ? `limit ${formatMemory(memoryBytes)}` : 'no memory limit was set: the host ran out of memory';
  return `out of memory: the container was killed by the kernel OOM killer (${limit})`;
}

/**
 * Exit 137 (SIGKILL, not rbtk-runner's stop) under a memory limit, yet no OOM kill reported: the
 * Engine can miss one (containerd watches for OOM only once the container runs, and a kill in its
 * first instants goes unseen), so the result says what it may have been rather than a bare 137.
 */
export function possibleOomMessage(memoryBytes: number): string {
  return `exited with code 137 (SIGKILL) under its ${formatMemory(memoryBytes)} memory limit: possibly the kernel OOM killer, though Docker reported no OOM kill`;
}
