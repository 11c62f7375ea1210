import { spawn } from 'node:child_process';
import { EMPTY_GPU_INVENTORY, type GpuInventory } from '@rbtk/protocol/runner';
import type { NvidiaSmiReport } from './gpu-xml.js';

export interface ReadGpusOptions {
  /** The program to run; found on PATH. Default "nvidia-smi". */
  command?: string;
  /** Environment for the lookup and the run (tests put a stand-in nvidia-smi on PATH). */
  env?: NodeJS.ProcessEnv;
  /** A hung driver makes nvidia-smi hang too; never let it hold up the runner. Default 10 s. */
  timeoutMs?: number;
}

/** The GPUs nvidia-smi sees, before anyone asked Docker whether it can hand them out. */
export type GpuReport = Omit<GpuInventory, 'usable' | 'reason'> & {
  /** What went wrong, or what looked odd; empty on a clean run and on a host without nvidia-smi. */
  warnings: string[];
};

/** nvidia-smi -q -x of an 8-GPU host is ~230 KB; leave room for bigger hosts. */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/**
 * Runs `nvidia-smi -q -x` and parses it. Never throws: no nvidia-smi on PATH
 * is a host without GPUs (no warning); nvidia-smi failing, hanging or
 * printing something unreadable is zero GPUs and a warning saying what failed.
 */
export async function readGpus(options: ReadGpusOptions = {}): Promise<GpuReport> {
  const command = options.command ?? 'nvidia-smi';
  const timeoutMs = options.timeoutMs ?? 10_000;
  const empty = (warning?: string): GpuReport => ({
    gpus: [],
    driverVersion: EMPTY_GPU_INVENTORY.driverVersion,
    cudaVersion: EMPTY_GPU_INVENTORY.cudaVersion,
    warnings: warning ? [warning] : [],
  });

  let stdout: string;
  try {
    stdout = await run(command, ['-q', '-x'], options.env ?? process.env, timeoutMs);
  } catch (err) {
    const e = err as RunError;
    if (e.code === 'ENOENT') return empty();
    if (e.timedOut) return empty(`${command} -q -x did not finish within ${timeoutMs} ms; assuming no GPUs`);
    const said = firstLine(e.stderr) || firstLine(e.stdout) || e.message;
    const how = typeof e.code === 'number' ? `exited with code ${e.code}` : `failed`;
    return empty(`${command} -q -x ${how}: ${said}; assuming no GPUs`);
  }
  try {
    return await parseReport(stdout);
  } catch (err) {
    return empty(`${command} -q -x: ${(err as Error).message}; assuming no GPUs`);
  }
}

/** fast-xml-parser loads only where nvidia-smi ran: a host without GPUs never carries it. */
async function parseReport(xml: string): Promise<NvidiaSmiReport> {
  return (await import('./gpu-xml.js')).parseNvidiaSmiXml(xml);
}

interface RunError extends Error {
  code?: string | number;
  timedOut?: boolean;
  stdout?: string;
  stderr?: string;
}

/**
 * Runs the program without a shell, in its own process group. At the deadline
 * the group gets SIGKILL and the promise rejects at once, without waiting for
 * the pipes to close: a process stuck in the driver may never die.
 */
function run(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    const timer = setTimeout(() => {
      killGroup();
      settle(() => reject(Object.assign(new Error('timed out'), { timedOut: true })));
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_OUTPUT_BYTES) {
        killGroup();
        settle(() => reject(new Error(`printed more than ${MAX_OUTPUT_BYTES} bytes`)));
      } else out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.once('error', (e: NodeJS.ErrnoException) => settle(() => reject(Object.assign(e, { code: e.code }))));
    child.once('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) settle(() => resolve(stdout));
      else settle(() => reject(Object.assign(new Error(signal ? `killed by ${signal}` : `exited with code ${code}`), { code: code ?? undefined, stdout, stderr })));
    });
  });
}

function firstLine(text: string | undefined): string {
  return (text ?? '').trim().split('\n')[0]?.trim() ?? '';
}
