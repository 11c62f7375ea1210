import type { HostedPoolSpec } from '@rbtk/protocol';
import { writeFileAtomic } from '../atomic-write.js';

/** What a provider needs to bring up one member: its runner is registered already. */
export interface MemberLaunch {
  memberId: string;
  pool: string;
  project: string;
  spec: HostedPoolSpec;
  /** The coordinator the member's runner connects to. */
  url: string;
  runnerId: string;
  runnerName: string;
  /** The runner token: written only where the member reads it (its runner.yaml, 0600), never logged. */
  token: string;
}

/** The provider's way back to a member: a pid, a container id, an instance id. Stored as JSON. */
export type MemberHandle = Record<string, unknown>;

/** A member the provider finds on its infrastructure, whether or not the store knows it. */
export interface OwnedMember {
  memberId: string;
  handle: MemberHandle;
  /** Still running (or stopped but there): an adoptable member. false: it died. */
  alive: boolean;
}

/**
 * Where hosted members come from. One implementation per kind of
 * infrastructure (local processes, Docker, a cloud API, Kubernetes pods); the
 * reconcile loop decides, providers only do. Each method is safe to repeat:
 * terminating a member that is gone succeeds.
 */
export interface HostedProviderImpl {
  readonly name: string;
  /** Prepares the member (files, container, instance) without starting it. */
  create(launch: MemberLaunch): Promise<MemberHandle>;
  /** Starts (or resumes) it; its runner then connects and says hello. */
  start(memberId: string, handle: MemberHandle): Promise<MemberHandle>;
  /** Stops (pauses) it, keeping it for a fast start on claim. */
  stop(memberId: string, handle: MemberHandle): Promise<void>;
  /** Stops it for good and removes what create() made. */
  terminate(memberId: string, handle: MemberHandle | null): Promise<void>;
  /** Every member this provider runs for this coordinator: what a restarted coordinator adopts or cleans up. */
  listOwned(): Promise<OwnedMember[]>;
  /**
   * True while it cannot be running anything for this coordinator (never
   * used here): the scan of every provider for leaks passes it by, instead
   * of waking (and loading) it for nothing. Absent: always scanned.
   */
  dormant?(): boolean;
}

/**
 * What every member of a pool gets in its runner.yaml: one job at a time, the
 * pool's executors and labels, a short shutdown. The spec hash covers all of
 * it, so a change here or in the spec recycles idle members.
 */
export function memberRunnerConfig(spec: HostedPoolSpec) {
  return { max_jobs: 1, executors: [...spec.executors], labels: { ...spec.labels }, shutdown_timeout: '10s' };
}

/**
 * A member's runner.yaml (0600): the pool's part, and its own. JSON is
 * YAML: the runner reads it as its runner.yaml, and rewrites it as YAML when
 * its token rotates. `stateDir` is as the member sees it (a container's mount).
 */
export async function writeMemberConfig(path: string, launch: MemberLaunch, stateDir: string): Promise<void> {
  const config = {
    url: launch.url,
    runner_id: launch.runnerId,
    token: launch.token,
    name: launch.runnerName,
    pool: launch.pool,
    project: launch.project,
    ...memberRunnerConfig(launch.spec),
    state_dir: stateDir,
  };
  await writeFileAtomic(path, `${JSON.stringify(config, null, 2)}\n`, 0o600);
}
