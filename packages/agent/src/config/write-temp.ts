import { realpathSync } from 'node:fs';
import { lstat, readdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/*
 * write-file-atomic names its temp file `<file>.<uint32>` (a hash in decimal), and an
 * operator's backup such as runner.yaml.20240601 has that shape too: no name pattern
 * tells them apart. So each write marks its temp file with an empty `<temp>.rbtk-writing`,
 * created before any byte (the token) goes into the temp file, and removed once the temp
 * file is gone; a start removes only temp files that carry a mark (or hold nothing).
 */
const MARK = '.rbtk-writing';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The file write-file-atomic really writes: it resolves a symlinked runner.yaml and
 * writes and renames in the target's directory, so that is the one to fsync and to clean.
 * A path that does not resolve (no file yet) is written as it is, as write-file-atomic does.
 * Synchronous (one syscall) so that writes reach write-file-atomic's per-file queue in
 * call order: the last write called is the one that stays.
 */
export function writeTarget(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** write-file-atomic's tmpfileCreated hook: runs after the temp file is opened, before it is written. */
export async function markTempFile(tmp: string): Promise<void> {
  await writeFile(`${tmp}${MARK}`, '', { mode: 0o600 });
}

/** Drops the mark once its temp file is gone (renamed or unlinked); a mark left behind costs nothing. */
export async function unmarkTempFile(tmp: string): Promise<void> {
  if (await present(tmp)) return;
  await rm(`${tmp}${MARK}`, { force: true }).catch(() => undefined);
}

/**
 * Removes temp files that a write killed mid-way left next to the config, and their
 * marks; returns the temp files' names. An empty one goes too, mark or not: a kill right
 * after write-file-atomic opened it leaves it unmarked, and an empty file holds nothing
 * to keep. Call only while no write is in flight, i.e. before the daemon starts.
 */
export async function removeStaleTempFiles(path: string): Promise<string[]> {
  const target = writeTarget(path);
  const dir = dirname(target);
  const temp = new RegExp(`^${escape(basename(target))}\\.(?:0|[1-9]\\d{0,9})$`);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of entries.filter((n) => temp.test(n))) {
    const marked = entries.includes(`${name}${MARK}`);
    if (marked || (await isEmptyFile(join(dir, name)))) {
      await rm(join(dir, name), { force: true });
      removed.push(name);
    }
  }
  // Marks whose temp file is gone too: a kill after the rename, before the mark was dropped.
  for (const mark of entries.filter((n) => n.endsWith(MARK) && temp.test(n.slice(0, -MARK.length)))) {
    await rm(join(dir, mark), { force: true });
  }
  return removed;
}

async function isEmptyFile(path: string): Promise<boolean> {
  try {
    const s = await lstat(path);
    return s.isFile() && s.size === 0;
  } catch {
    return false;
  }
}

async function present(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}
