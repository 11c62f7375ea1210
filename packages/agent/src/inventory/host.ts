import os from 'node:os';
import type { HostFacts } from '@rbtk/protocol/runner';
import type Si from 'systeminformation';
import { requireCjs } from '../require-cjs.js';
import { readDistro } from './os-release.js';

export interface HostFactsOptions {
  /** The lookup may shell out on some hosts; never let it hold up a connection for long. */
  timeoutMs?: number;
  /** The detailed lookup; by default os-release on Linux, systeminformation elsewhere. */
  lookup?: () => Promise<HostFacts>;
}

/**
 * Host facts for registration and hello: the OS distro and release from
 * os-release on Linux, from systeminformation elsewhere; node:os when that
 * fails or is too slow (containers, odd distros).
 */
export async function collectHostFacts(options: HostFactsOptions = {}): Promise<HostFacts> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('host lookup timed out')), options.timeoutMs ?? 3_000);
    timer.unref();
  });
  const lookup = options.lookup ?? (process.platform === 'linux' ? fromOsRelease : fromSystemInformation);
  try {
    return clamp(await Promise.race([lookup(), timeout]));
  } catch {
    return clamp(fromNodeOs());
  } finally {
    clearTimeout(timer);
  }
}

/**
 * On Linux, what systeminformation reported: it too counts cores with
 * os.cpus() (not the affinity mask) and reads memory from /proc/meminfo.
 */
async function fromOsRelease(): Promise<HostFacts> {
  const { distro, release } = await readDistro();
  const facts = fromNodeOs();
  return { ...facts, os: [distro, release].filter(Boolean).join(' ') || facts.os, cpus: os.cpus().length || facts.cpus };
}

/** macOS, BSDs, Windows: systeminformation, loaded on first use (see require-cjs.ts). */
async function fromSystemInformation(): Promise<HostFacts> {
  const si = requireCjs('systeminformation') as typeof Si;
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
