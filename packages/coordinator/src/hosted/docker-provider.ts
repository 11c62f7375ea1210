import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type Docker from 'dockerode';
import { type DockerTimeouts, dockerTimeouts, withDeadline } from './docker-timeouts.js';
import { type HostedProviderImpl, type MemberHandle, type MemberLaunch, type OwnedMember, writeMemberConfig } from './provider.js';

/** Labels every member container carries: what listOwned() finds after a restart. */
export const MEMBER_LABEL = 'rbtk.hosted.member';
export const POOL_LABEL = 'rbtk.hosted.pool';
export const PROJECT_LABEL = 'rbtk.hosted.project';
/** The coordinator's member folder: one engine may serve several coordinators, each lists only its own. */
export const OWNER_LABEL = 'rbtk.hosted.owner';

/** Where the member's folder (runner.yaml, state) is mounted in its container. */
const MEMBER_MOUNT = '/member';
const CONFIG_FILE = 'runner.yaml';
/** Seconds Docker gives a member between SIGTERM and SIGKILL (its runner was revoked first: no job). */
const STOP_TIMEOUT_S = 5;

/** The agent from this host instead of the image's (dev, tests): its node and install, read-only. */
export interface HostAgent {
  node: string;
  /** bin/rbtk-runner.js of this install. */
  runnerBin: string;
  /** Host paths mounted read-only at the same path: the install and node's shared libraries. */
  mounts: string[];
}

export interface DockerProviderOptions {
  docker: Docker;
  /** DATA_DIR/hosted-docker: one folder per member, bind-mounted at /member. */
  root: string;
  /** Default host: members reach the coordinator on its loopback URL, and a bridge is not needed. */
  network?: string;
  hostAgent?: HostAgent;
  /** Each call's deadline (DEFAULT_DOCKER_TIMEOUTS where not given). */
  timeouts?: Partial<DockerTimeouts>;
}

const isNotFound = (err: unknown) => (err as { statusCode?: number }).statusCode === 404;
const isNotModified = (err: unknown) => (err as { statusCode?: number }).statusCode === 304;

/**
 * Members as containers on the local Docker Engine: the pool's image runs
 * `rbtk-runner run --config /member/runner.yaml` (docker/runner.Dockerfile
 * builds one), with the member's folder (runner.yaml 0600, state) bind-mounted
 * at /member and the host network. Stopped mode pauses them (cgroup freezer)
 * and unpauses them with a SIGCONT, which tells the agent to reconnect at once.
 * The engine must be the coordinator's host (bind mounts); a remote one would
 * need the config copied in (putArchive) instead.
 */
export class DockerProvider implements HostedProviderImpl {
  readonly name = 'docker';
  private readonly timeouts: DockerTimeouts;

  constructor(private readonly options: DockerProviderOptions) {
    this.timeouts = dockerTimeouts(options.timeouts);
  }

  private dirOf(pool: string, memberId: string): string {
    return join(this.options.root, pool, memberId);
  }

  create(launch: MemberLaunch): Promise<MemberHandle> {
    return withDeadline('create', this.timeouts.createMs, (signal) => this.createNow(launch, signal));
  }

  private async createNow(launch: MemberLaunch, abortSignal: AbortSignal): Promise<MemberHandle> {
    const image = launch.spec.image;
    if (!image) throw new Error(`pool ${launch.pool}: the docker provider needs --image (a runner image, see docker/runner.Dockerfile)`);
    const dir = this.dirOf(launch.pool, launch.memberId);
    await mkdir(join(dir, 'state'), { recursive: true, mode: 0o700 });
    await writeMemberConfig(join(dir, CONFIG_FILE), launch, `${MEMBER_MOUNT}/state`);
    const run = ['run', '--config', `${MEMBER_MOUNT}/${CONFIG_FILE}`];
    const host = this.options.hostAgent;
    const binds = [`${dir}:${MEMBER_MOUNT}`, ...(host ? host.mounts.map((m) => `${m}:${m}:ro`) : [])];
    if (host) binds.push(`${host.node}:/usr/local/bin/node:ro`);
    const container = await this.options.docker.createContainer({
      name: `rbtk-${launch.pool}-${launch.memberId}`.replace(/[^a-zA-Z0-9_.-]/g, '-'),
      Image: image,
      ...(host ? { Entrypoint: ['/usr/local/bin/node'], Cmd: [host.runnerBin, ...run] } : { Cmd: run }),
      Env: ['HOME=/tmp'],
      Labels: {
        [MEMBER_LABEL]: launch.memberId,
        [POOL_LABEL]: launch.pool,
        [PROJECT_LABEL]: launch.project,
        [OWNER_LABEL]: this.options.root,
      },
      StopTimeout: STOP_TIMEOUT_S,
      HostConfig: { NetworkMode: this.options.network ?? 'host', Binds: binds, RestartPolicy: { Name: 'no' } },
      abortSignal,
    });
    return { dir, containerId: container.id };
  }

  start(memberId: string, handle: MemberHandle): Promise<MemberHandle> {
    return withDeadline('start', this.timeouts.startMs, async (abortSignal) => {
      const c = this.options.docker.getContainer(containerIdOf(memberId, handle));
      const state = (await c.inspect({ abortSignal })).State;
      if (state.Paused) {
        await c.unpause({ abortSignal });
        // The freezer sends no signal: SIGCONT tells the agent it was stopped (reconnect now, no backoff).
        await c.kill({ signal: 'SIGCONT', abortSignal }).catch(() => undefined);
      } else if (!state.Running) {
        await c.start({ abortSignal }).catch((err: unknown) => {
          if (!isNotModified(err)) throw err;
        });
      }
      return handle;
    });
  }

  stop(memberId: string, handle: MemberHandle): Promise<void> {
    return withDeadline('pause', this.timeouts.callMs, async (abortSignal) => {
      await this.options.docker.getContainer(containerIdOf(memberId, handle)).pause({ abortSignal });
    });
  }

  terminate(memberId: string, handle: MemberHandle | null): Promise<void> {
    return withDeadline('remove', this.timeouts.startMs, (signal) => this.terminateNow(memberId, handle, signal));
  }

  private async terminateNow(memberId: string, handle: MemberHandle | null, abortSignal: AbortSignal): Promise<void> {
    const id = typeof handle?.containerId === 'string' ? handle.containerId : await this.findContainer(memberId, abortSignal);
    if (id) {
      const c = this.options.docker.getContainer(id);
      try {
        // A paused container takes no signal: unpause, then SIGTERM and SIGKILL after STOP_TIMEOUT_S.
        const state = (await c.inspect({ abortSignal })).State;
        if (state.Paused) await c.unpause({ abortSignal });
        if (state.Running || state.Paused) await c.stop({ t: STOP_TIMEOUT_S, abortSignal }).catch((err: unknown) => {
          if (!isNotModified(err)) throw err;
        });
        await c.remove({ force: true, abortSignal });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    const dir = typeof handle?.dir === 'string' ? handle.dir : null;
    if (dir && dirname(dirname(dir)) === this.options.root) await rm(dir, { recursive: true, force: true });
  }

  listOwned(): Promise<OwnedMember[]> {
    return withDeadline('list', this.timeouts.callMs, (signal) => this.listOwnedNow(signal));
  }

  private async listOwnedNow(abortSignal: AbortSignal): Promise<OwnedMember[]> {
    const list = await this.options.docker.listContainers({ all: true, filters: { label: [`${OWNER_LABEL}=${this.options.root}`] }, abortSignal });
    return list.map((c) => {
      const memberId = c.Labels[MEMBER_LABEL] ?? '';
      const pool = c.Labels[POOL_LABEL] ?? '';
      return {
        memberId,
        handle: { containerId: c.Id, dir: this.dirOf(pool, memberId) },
        // Paused (stopped mode) is there, and adoptable; exited or never started is not.
        alive: c.State === 'running' || c.State === 'paused',
      };
    });
  }

  private async findContainer(memberId: string, abortSignal: AbortSignal): Promise<string | null> {
    const list = await this.options.docker.listContainers({
      all: true,
      filters: { label: [`${OWNER_LABEL}=${this.options.root}`, `${MEMBER_LABEL}=${memberId}`] },
      abortSignal,
    });
    return list[0]?.Id ?? null;
  }
}

function containerIdOf(memberId: string, handle: MemberHandle): string {
  if (typeof handle.containerId !== 'string') throw new Error(`member ${memberId} has no container`);
  return handle.containerId;
}
