import type { GpuInventory } from '@rbtk/protocol/runner';

/** A failed claim is `retryable` when the GPUs exist but other attempts hold them now. */
export type GpuClaim = { ok: true; uuids: string[] } | { ok: false; reason: string; retryable?: boolean };

/**
 * Which of the host's usable GPUs each running attempt holds. Claims are
 * synchronous, so two assignments handled back to back never get the same
 * GPU; the manager releases a claim when its attempt ends, however it ends.
 */
export class GpuAllocator {
  private readonly taken = new Map<string, string[]>();

  constructor(private readonly inventory: GpuInventory) {}

  /** Free usable GPUs, in nvidia-smi's order. */
  free(): string[] {
    if (!this.inventory.usable) return [];
    const held = new Set([...this.taken.values()].flat());
    return this.inventory.gpus.map((g) => g.uuid).filter((u) => !held.has(u));
  }

  /** GPU uuid per holder, for the status. */
  holders(): Record<string, string[]> {
    return Object.fromEntries(this.taken);
  }

  /**
   * Takes `count` GPUs for `holder`: the ones named in `wanted` (the
   * coordinator's choice), else the first free ones in index order.
   */
  claim(holder: string, count: number, wanted?: readonly string[]): GpuClaim {
    if (this.taken.has(holder)) return { ok: true, uuids: this.taken.get(holder)! };
    const total = this.inventory.gpus.length;
    if (total === 0) return { ok: false, reason: `the job needs ${count} GPU${count === 1 ? '' : 's'}; this runner has none` };
    if (!this.inventory.usable) {
      return { ok: false, reason: `the job needs ${count} GPU${count === 1 ? '' : 's'}; this runner's GPUs are not usable: ${this.inventory.reason ?? 'unknown reason'}` };
    }
    const free = this.free();
    let uuids: string[];
    if (wanted && wanted.length > 0) {
      if (wanted.length !== count) return { ok: false, reason: `the assignment names ${wanted.length} GPUs for a job that needs ${count}` };
      const known = new Set(this.inventory.gpus.map((g) => g.uuid));
      const unknown = wanted.filter((u) => !known.has(u));
      if (unknown.length > 0) return { ok: false, reason: `GPUs not on this runner: ${unknown.join(', ')}` };
      const busy = wanted.filter((u) => !free.includes(u));
      if (busy.length > 0) return { ok: false, reason: `GPUs not free on this runner: ${busy.join(', ')}`, retryable: true };
      uuids = [...wanted];
    } else {
      if (free.length < count) {
        const retryable = count <= total;
        return { ok: false, reason: `the job needs ${count} GPUs; ${free.length} of ${total} are free on this runner`, retryable };
      }
      uuids = free.slice(0, count);
    }
    this.taken.set(holder, uuids);
    return { ok: true, uuids };
  }

  release(holder: string): void {
    this.taken.delete(holder);
  }
}
