/** Binary units, as Docker's own `--memory` reads them: `512m` is 512 MiB, `1g` 1 GiB. */
const UNIT_BYTES = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 } as const;

/** Docker refuses a smaller container memory limit ("Minimum memory limit allowed is 6MB"). */
export const MIN_MEMORY_BYTES = 6 * 2 ** 20;
/** 1 PiB: beyond any host, and well inside a safe integer. */
export const MAX_MEMORY_BYTES = 2 ** 50;

const HOW = 'write it like 512m, 2g or a number of bytes';

/**
 * Parses a memory size the way Docker's `--memory` does (go-units RAMInBytes):
 * a number of bytes, or a number with a binary unit `k`, `m`, `g`, `t`, `p`,
 * optionally followed by `b` or `ib` (`512m`, `512MiB`, `1.5g`, `512 MB` are
 * all binary). Throws a RangeError naming the bad input.
 */
export function parseMemory(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`invalid memory size ${value}: ${HOW}`);
    return value;
  }
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i.exec(value.trim());
  if (!m) throw new RangeError(`invalid memory size "${value}": ${HOW}`);
  const unit = (m[2] ?? '').toLowerCase() as keyof typeof UNIT_BYTES;
  const bytes = Math.round(Number(m[1]) * UNIT_BYTES[unit]);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`invalid memory size "${value}": too large`);
  return bytes;
}

/** True when value is a memory size parseMemory accepts. */
export function isMemory(value: string | number): boolean {
  try {
    parseMemory(value);
    return true;
  } catch {
    return false;
  }
}

/** Readable, in the largest binary unit that fits: 536870912 → "512 MiB", 1610612736 → "1.5 GiB". */
export function formatMemory(bytes: number): string {
  const units = [['PiB', UNIT_BYTES.p], ['TiB', UNIT_BYTES.t], ['GiB', UNIT_BYTES.g], ['MiB', UNIT_BYTES.m], ['KiB', UNIT_BYTES.k]] as const;
  for (const [name, size] of units) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(2))} ${name}`;
  }
  return `${bytes} B`;
}
