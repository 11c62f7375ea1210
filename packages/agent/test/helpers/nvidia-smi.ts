import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NVIDIA_SMI_FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'nvidia-smi');
export const EIGHT_GPUS = 'datakit-8x-tesla-v100s-pcie-32gb-v11.xml';
export const TWO_GPUS = 'openpai-2x-rtx-2080ti-v10.xml';

export interface StandIn {
  /** An environment whose PATH finds only the stand-in (and sh, cat, sleep from /bin). */
  env: NodeJS.ProcessEnv;
  dir: string;
  cleanup(): Promise<void>;
}

/**
 * A stand-in `nvidia-smi` in a temp directory on PATH: a shell script that
 * prints a real capture (`capture`), or runs `script` instead.
 */
export async function standInNvidiaSmi(what: { capture: string } | { script: string }): Promise<StandIn> {
  const dir = await mkdtemp(join(tmpdir(), 'rbtk-nvidia-smi-'));
  const body = 'capture' in what ? `exec cat '${join(NVIDIA_SMI_FIXTURES, what.capture)}'` : what.script;
  await writeFile(join(dir, 'nvidia-smi'), `#!/bin/sh\n${body}\n`);
  await chmod(join(dir, 'nvidia-smi'), 0o755);
  return { env: { PATH: `${dir}:/usr/bin:/bin` }, dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** An environment whose PATH has no nvidia-smi at all. */
export async function noNvidiaSmi(): Promise<StandIn> {
  const dir = await mkdtemp(join(tmpdir(), 'rbtk-no-nvidia-smi-'));
  return { env: { PATH: dir }, dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
