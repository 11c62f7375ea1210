import { ErrorCode, RbtkError } from '@rbtk/protocol';

/**
 * Store failures that callers can act on, as the RbtkError clients see.
 * SQLite says SQLITE_FULL when its file (or its WAL) cannot grow: the
 * coordinator refuses new writes with 507 disk_full, keeps serving reads, and
 * takes writes again once space returns. Anything else stays unknown (500).
 */
export function knownStoreError(err: unknown): RbtkError | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'SQLITE_FULL') {
    return new RbtkError(
      ErrorCode.DiskFull,
      "the coordinator's disk is full: nothing new can be stored until space is freed under its data directory",
    );
  }
  return undefined;
}
