/**
 * Who drains the runner from this host: `rbtk-runner drain`, a stop signal,
 * or a pending upgrade. The coordinator's drains (an operator's, the pool's)
 * are kept apart: only the coordinator lifts them.
 */
export type DrainSource = 'host' | 'stop' | 'upgrade';

export interface DrainInfo {
  source: DrainSource | 'coordinator';
  reason: string;
  since: string;
}

/** Why `rbtk-runner drain` stops the runner taking jobs. */
export const HOST_DRAIN_REASON = 'drained on the host (rbtk-runner drain)';

/** A stop outranks an upgrade, which outranks a drain asked for on the host. */
const RANK: Record<DrainSource, number> = { host: 0, upgrade: 1, stop: 2 };

export type ResumeResult = { ok: true; changed: boolean } | { ok: false; reason: string };

/**
 * Whether this runner takes new jobs. The job manager asks refusal() for each
 * assignment; the session reports every change of the local drain to the
 * coordinator (hello carries it on a reconnect).
 */
export class DrainControl {
  private local: DrainInfo | null;
  private coordinator: DrainInfo | null = null;
  private readonly listeners = new Set<(local: DrainInfo | null) => void>();

  /** `kept`: the host drain a previous run left on disk (drain.json); hello carries it. */
  constructor(kept: DrainInfo | null = null) {
    this.local = kept;
  }

  /** Drains for `source`; a weaker source never replaces a stronger one. True when the local drain changed. */
  drain(source: DrainSource, reason: string, now = new Date()): boolean {
    const current = this.local;
    if (current && RANK[current.source as DrainSource] > RANK[source]) return false;
    if (current && current.source === source && current.reason === reason) return false;
    this.local = { source, reason, since: current?.since ?? now.toISOString() };
    this.emit();
    return true;
  }

  /** Lifts a drain asked for on the host; a stop or an upgrade in progress cannot be lifted. */
  resume(): ResumeResult {
    if (!this.local) return { ok: true, changed: false };
    if (this.local.source !== 'host') return { ok: false, reason: `cannot resume: ${this.local.reason}` };
    this.local = null;
    this.emit();
    return { ok: true, changed: true };
  }

  /** What the coordinator said (welcome resets it to null; its drain frames set it). */
  setCoordinatorDrain(reason: string | null, now = new Date()): void {
    if ((this.coordinator?.reason ?? null) === reason) return;
    this.coordinator = reason === null ? null : { source: 'coordinator', reason, since: now.toISOString() };
  }

  get localDrain(): DrainInfo | null {
    return this.local;
  }

  get draining(): boolean {
    return this.local !== null || this.coordinator !== null;
  }

  /** Why an assignment is rejected now, or undefined when jobs are welcome. */
  refusal(): string | undefined {
    const why = this.local ?? this.coordinator;
    return why ? `rbtk-runner is draining: ${why.reason}` : undefined;
  }

  /** Every drain in force, the host's first (the control socket shows them). */
  list(): DrainInfo[] {
    return [this.local, this.coordinator].filter((d): d is DrainInfo => d !== null);
  }

  /** Called on each change of the local drain; returns the unsubscribe. */
  onLocalChange(listener: (local: DrainInfo | null) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(): void {
    for (const listener of this.listeners) listener(this.local);
  }
}
