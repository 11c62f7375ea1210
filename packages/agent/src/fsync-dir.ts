import { open } from 'node:fs/promises';

/** A rename, create or unlink in `dir` is durable only once the directory itself is fsynced. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
