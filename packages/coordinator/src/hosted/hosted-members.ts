import type { HostedStore, MemberChange, MemberRow } from '../store/hosted-store.js';

/*
 * This process's copy of the member rows (loaded at start, written through
 * to the store) and what it knows of each member that the store does not:
 * whether its job left it, whether it is being stopped, when it was woken or
 * began warming. Member rows are written only through here.
 */
export class MemberRegistry {
  private readonly rows = new Map<string, MemberRow>();
  /** runner id -> member id, for the synchronous job hooks. */
  private readonly byRunner = new Map<string, string>();
  /** Jobs that left their member, settled by the next pass: member id -> succeeded. */
  readonly released = new Map<string, boolean>();
  /** Members being stopped (no job lands on them meanwhile). */
  readonly stopping = new Set<string>();
  /** Of those, ones a claim took meanwhile: started the moment their stop is done. */
  readonly wakeAfterStop = new Set<string>();
  /** Members started for a claim: member id -> when (they are not stopped again within WAKE_GRACE_MS). */
  readonly woken = new Map<string, number>();
  /** When each warming member was created or started: time to ready. */
  readonly warmingSince = new Map<string, number>();
  /** Members whose create runs in this process: a warming member with no handle outside it is a create a crash cut short. */
  readonly creating = new Set<string>();

  constructor(private readonly store: HostedStore) {}

  get(id: string): MemberRow | undefined {
    return this.rows.get(id);
  }

  has(id: string): boolean {
    return this.rows.has(id);
  }

  all(): IterableIterator<MemberRow> {
    return this.rows.values();
  }

  ofPool(poolId: number): MemberRow[] {
    return [...this.rows.values()].filter((m) => m.poolId === poolId);
  }

  /** The member whose runner this is, if any. */
  ofRunner(runnerId: string): MemberRow | undefined {
    const id = this.byRunner.get(runnerId);
    return id === undefined ? undefined : this.rows.get(id);
  }

  /** Whether any member (in this process) has this runner. */
  hasRunner(runnerId: string): boolean {
    return this.byRunner.has(runnerId);
  }

  remember(m: MemberRow): void {
    this.rows.set(m.id, m);
    if (m.runnerId) this.byRunner.set(m.runnerId, m.id);
  }

  forget(m: MemberRow): void {
    this.rows.delete(m.id);
    if (m.runnerId) this.byRunner.delete(m.runnerId);
    this.released.delete(m.id);
    this.woken.delete(m.id);
    this.wakeAfterStop.delete(m.id);
    this.warmingSince.delete(m.id);
    this.creating.delete(m.id);
  }

  /** Applies the change here and in the store; the runner map follows a change of runner. */
  async update(m: MemberRow, change: MemberChange): Promise<void> {
    if (change.runnerId !== undefined && m.runnerId && m.runnerId !== change.runnerId) this.byRunner.delete(m.runnerId);
    Object.assign(m, change);
    if (m.runnerId && this.rows.get(m.id) === m) this.byRunner.set(m.runnerId, m.id);
    await this.store.updateMember(m.id, change);
  }
}
