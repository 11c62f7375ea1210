import { execFile } from 'node:child_process';
import { mkdtemp, open, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Whether this process may mount a tmpfs (root, and a kernel that lets it); says why not otherwise. */
async function canMountTmpfs(): Promise<string | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'rbtk-tmpfs-probe-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
    await run('umount', [dir]);
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]})`;
  } finally {
    await rmdir(dir).catch(() => undefined);
  }
}

/**
 * Why tests that fill a small file system cannot run here, or undefined when
 * they can. They skip, saying so, except under CI, where they are required.
 */
export async function requireTmpfs(what: string): Promise<string | undefined> {
  const noMount = await canMountTmpfs();
  if (noMount && process.env.CI) throw new Error(`${what}: ${noMount}; it is required under CI (run as root)`);
  if (noMount) console.warn(`SKIPPING ${what}: ${noMount}`);
  return noMount;
}

/** Mounts a tmpfs of `size` (e.g. "4m") on dir, mode 0700. */
export async function mountTmpfs(dir: string, size: string): Promise<void> {
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
}

export async function unmount(dir: string): Promise<void> {
  await run('umount', [dir]).catch(() => undefined);
}

/** Writes zeros until the file system says ENOSPC (or `bytes` are written). */
export async function fillDisk(file: string, bytes = Infinity): Promise<void> {
  const fh = await open(file, 'w');
  const block = Buffer.alloc(64 * 1024);
  try {
    for (let written = 0; written < bytes; written += block.length) await fh.write(block, 0, Math.min(block.length, bytes - written));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close();
  }
}
