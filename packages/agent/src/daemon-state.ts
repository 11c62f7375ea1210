import type { GpuInventory, HeartbeatAck, RunnerConfig, RunnerStatus, Welcome } from '@rbtk/protocol/runner';
import type { ExitGoal } from './daemon-exit.js';
import type { DrainControl, DrainInfo } from './drain.js';
import type { JobStatus } from './jobs/held-attempt.js';
import type { UpgradeRequired } from './minimum-version.js';

/** What `GET /status` on the control socket answers. */
export interface DaemonStatus {
  pid: number;
  agentVersion: string;
  startedAt: string;
  url: string;
  runnerId: string;
  name: string;
  pool: string | null;
  project: string | null;
  connected: boolean;
  /** When the current connection opened, or when the last one ended. */
  since: string;
  /** As the coordinator last said (welcome, heartbeat_ack). */
  status: RunnerStatus | null;
  heartbeatIntervalMs: number | null;
  lastHeartbeatAt: string | null;
  lastAckAt: string | null;
  heartbeatsSent: number;
  rotations: number;
  reconnects: number;
  lastError: string | null;
  /** Attempts this runner holds: running, or finished with a result not yet acknowledged. */
  jobs: JobStatus[];
  /** The GPUs advertised in hello, with whether Docker can hand them out; null before they were read. */
  gpus: GpuInventory | null;
  /** Usable GPUs no attempt holds. */
  freeGpus: string[];
  /** Why it takes no new jobs (the host's drain first, then the coordinator's); empty: it takes jobs. */
  draining: DrainInfo[];
  /** It exits once its jobs are done: stopped (exit 0) or for an upgrade (exit 75); null: it stays. */
  exiting: ExitGoal | null;
  /** The coordinator wants a newer agent than the one installed: it takes no jobs until one is; null: it does not. */
  upgradeRequired: UpgradeRequired | null;
}

/** The daemon's live state, updated by the connect loop and read by the control server. */
export class DaemonState {
  private readonly s: Omit<DaemonStatus, 'jobs' | 'gpus' | 'freeGpus' | 'draining' | 'exiting' | 'upgradeRequired'>;
  private jobSource: (() => JobStatus[]) | undefined;
  private gpus: GpuInventory | null = null;
  private freeGpus: () => string[] = () => [];
  private drain: DrainControl | undefined;
  private exiting: () => ExitGoal | null = () => null;
  private upgradeRequired: () => UpgradeRequired | null = () => null;

  constructor(config: RunnerConfig, agentVersion: string, now = new Date()) {
    this.s = {
      pid: process.pid,
      agentVersion,
      startedAt: now.toISOString(),
      url: config.url,
      runnerId: config.runner_id,
      name: config.name,
      pool: config.pool ?? null,
      project: config.project ?? null,
      connected: false,
      since: now.toISOString(),
      status: null,
      heartbeatIntervalMs: null,
      lastHeartbeatAt: null,
      lastAckAt: null,
      heartbeatsSent: 0,
      rotations: 0,
      reconnects: 0,
      lastError: null,
    };
  }

  connected(welcome: Welcome): void {
    Object.assign(this.s, {
      connected: true,
      since: new Date().toISOString(),
      runnerId: welcome.runnerId,
      name: welcome.name,
      pool: welcome.pool,
      project: welcome.project,
      status: welcome.status,
      heartbeatIntervalMs: welcome.heartbeatIntervalMs,
      lastAckAt: new Date().toISOString(),
      lastError: null,
    });
  }

  disconnected(reason: string): void {
    Object.assign(this.s, { connected: false, since: new Date().toISOString(), lastError: reason });
  }

  reconnecting(): void {
    this.s.reconnects++;
  }

  failed(reason: string): void {
    this.s.lastError = reason;
  }

  heartbeatSent(): void {
    this.s.heartbeatsSent++;
    this.s.lastHeartbeatAt = new Date().toISOString();
  }

  acked(ack: HeartbeatAck): void {
    Object.assign(this.s, {
      status: ack.status,
      heartbeatIntervalMs: ack.heartbeatIntervalMs,
      lastAckAt: new Date().toISOString(),
    });
  }

  /** Where snapshot() reads the jobs from (the job manager). */
  trackJobs(source: () => JobStatus[]): void {
    this.jobSource = source;
  }

  /** The inventory sent in hello, and where the free GPUs are read from (the allocator). */
  trackGpus(inventory: GpuInventory, free: () => string[]): void {
    this.gpus = inventory;
    this.freeGpus = free;
  }

  /** Where snapshot() reads the drains and the exit goal from (the daemon). */
  trackDrain(drain: DrainControl, exiting: () => ExitGoal | null): void {
    this.drain = drain;
    this.exiting = exiting;
  }

  /** Where snapshot() reads whether it waits for a newer agent to be installed (the daemon). */
  trackUpgradeRequired(source: () => UpgradeRequired | null): void {
    this.upgradeRequired = source;
  }

  rotated(): void {
    this.s.rotations++;
  }

  get heartbeatIntervalMs(): number | null {
    return this.s.heartbeatIntervalMs;
  }

  snapshot(): DaemonStatus {
    return {
      ...this.s,
      jobs: this.jobSource?.() ?? [],
      gpus: this.gpus,
      freeGpus: this.freeGpus(),
      draining: this.drain?.list() ?? [],
      exiting: this.exiting(),
      upgradeRequired: this.upgradeRequired(),
    };
  }
}
