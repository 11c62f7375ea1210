import os from 'node:os';
import type { HostFacts } from '@rbtk/protocol';
import si from 'systeminformation';

export interface HostFactsOptions {
  /** systeminformation shells out on some hosts; never let it hold up a connection for long. */
  timeoutMs?: number;
}

/**
 * Host facts for registration and hello: systeminformation for the OS distro
 * and release; node:os when it fails or is too slow (containers, odd distros).
 */
export async function collectHostFacts(options: HostFactsOptions = {}): Promise<HostFacts> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('systeminformation timed out')), options.timeoutMs ?? 3_000);
    timer.unref();
  });
  try {
    return clamp(await Promise.race([fromSystemInformation(), timeout]));
  } catch {
    return clamp(fromNodeOs());
  } finally {
    clearTimeout(timer);
  }
}

async function fromSystemInformation(): Promise<HostFacts> {
  const [osInfo, cpu, mem] = await Promise.all([si.osInfo(), si.cpu(), si.mem()]);
  const fallback = fromNodeOs();
  return {
    hostname: osInfo.hostname || fallback.hostname,
    os: [osInfo.distro, osInfo.release].filter(Boolean).join(' ') || fallback.os,
    arch: osInfo.arch || fallback.arch,
    cpus: cpu.cores || fallback.cpus,
    memoryBytes: mem.total || fallback.memoryBytes,
  };
}

export function fromNodeOs(): HostFacts {
  return {
    hostname: os.hostname(),
    os: `${os.type()} ${os.release()}`,
    arch: os.arch(),
    cpus: os.availableParallelism(),
    memoryBytes: os.totalmem(),
  };
}

/** The wire schema caps string lengths; a freak value must not fail a hello. */
function clamp(facts: HostFacts): HostFacts {
  return { ...facts, hostname: facts.hostname.slice(0, 255), os: facts.os.slice(0, 255), arch: facts.arch.slice(0, 64) };
}
