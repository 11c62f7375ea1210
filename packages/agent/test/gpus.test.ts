import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readGpus } from '../src/inventory/gpus.js';
import { EIGHT_GPUS, NVIDIA_SMI_FIXTURES, noNvidiaSmi, standInNvidiaSmi, type StandIn } from './helpers/nvidia-smi.js';

describe('readGpus: nvidia-smi -q -x on PATH', () => {
  let standIn: StandIn | undefined;
  afterEach(async () => {
    await standIn?.cleanup();
    standIn = undefined;
  });

  it('reads the GPUs a stand-in nvidia-smi prints (the 8-GPU capture)', async () => {
    standIn = await standInNvidiaSmi({ capture: EIGHT_GPUS });
    const report = await readGpus({ env: standIn.env });
    expect(report.warnings).toEqual([]);
    expect(report.gpus).toHaveLength(8);
    expect(report.gpus[7]).toMatchObject({ index: 7, uuid: 'GPU-1d955959-c95b-4f40-2cac-100d3006ffe2', memoryMiB: 32510 });
    expect(report.driverVersion).toBe('460.73.01');
  });

  it('passes -q -x', async () => {
    standIn = await standInNvidiaSmi({ script: `[ "$*" = "-q -x" ] || { echo "bad args: $*" >&2; exit 2; }\nexec cat '${join(NVIDIA_SMI_FIXTURES, EIGHT_GPUS)}'` });
    const report = await readGpus({ env: standIn.env });
    expect(report.warnings).toEqual([]);
    expect(report.gpus).toHaveLength(8);
  });

  it('no nvidia-smi on PATH: no GPUs, quietly', async () => {
    standIn = await noNvidiaSmi();
    expect(await readGpus({ env: standIn.env })).toEqual({ gpus: [], driverVersion: null, cudaVersion: null, warnings: [] });
  });

  it('nvidia-smi failing: no GPUs and a warning saying what failed', async () => {
    standIn = await standInNvidiaSmi({
      script: `echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2; exit 9`,
    });
    const report = await readGpus({ env: standIn.env });
    expect(report.gpus).toEqual([]);
    expect(report.warnings).toEqual([
      "nvidia-smi -q -x exited with code 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.; assuming no GPUs",
    ]);
  });

  it('nvidia-smi printing something that is not its XML: no GPUs and a warning', async () => {
    standIn = await standInNvidiaSmi({ script: 'echo "No devices were found"' });
    const report = await readGpus({ env: standIn.env });
    expect(report.gpus).toEqual([]);
    expect(report.warnings).toEqual(['nvidia-smi -q -x: nvidia-smi printed no <nvidia_smi_log> document; assuming no GPUs']);
  });

  it('nvidia-smi hanging: no GPUs and a warning once the time limit passes, the process group killed', async () => {
    // The grandchild `sleep` holds the output pipe open: the deadline must not wait for it.
    standIn = await standInNvidiaSmi({ script: 'sleep 30 & echo $! > "$(dirname "$0")/sleep.pid"; wait' });
    const t0 = Date.now();
    const report = await readGpus({ env: standIn.env, timeoutMs: 300 });
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(report).toEqual({
      gpus: [],
      driverVersion: null,
      cudaVersion: null,
      warnings: ['nvidia-smi -q -x did not finish within 300 ms; assuming no GPUs'],
    });
    const sleepPid = Number(await readFile(join(standIn.dir, 'sleep.pid'), 'utf8'));
    await new Promise((r) => setTimeout(r, 100));
    expect(alive(sleepPid)).toBe(false);
  });
});

/** Running, not a zombie (nobody may reap an orphan in a container without an init). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
