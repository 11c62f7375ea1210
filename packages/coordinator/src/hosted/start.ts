import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import type { HostedProvider } from '@rbtk/protocol';
import type Docker from 'dockerode';
import type { CoordinatorContext } from '../context.js';
import { findRunnerBin } from '../dev/runner-process.js';
import { agentMark } from './agent-mark.js';
import { HostedPools } from './hosted-pools.js';
import { DockerProvider, type HostAgent } from './docker-provider.js';
import { type DockerTimeouts, dockerTimeouts, pingAbortable, withDeadline } from './docker-timeouts.js';
import { LazyProvider } from './lazy-provider.js';
import { ProcessProvider } from './process-provider.js';
import type { HostedProviderImpl } from './provider.js';

/** Members' files live under DATA_DIR/hosted/<pool>/<member>/ (docker: hosted-docker/). */
export const HOSTED_DIR = 'hosted';
export const HOSTED_DOCKER_DIR = 'hosted-docker';

export interface HostedStartOptions {
  /** Docker provider: the agent of the pool's image, or this host's (bind-mounted; dev and tests). */
  dockerAgent?: 'image' | 'host';
  /** Deadlines of the docker provider's calls (DEFAULT_DOCKER_TIMEOUTS where not given); tests shorten them. */
  dockerTimeouts?: Partial<DockerTimeouts>;
  /** Used instead of the built-in ones of the same name. */
  providers?: Partial<Record<HostedProvider, HostedProviderImpl>>;
}

/** This host's node and rbtk-runner for a container: the install (its top folder with node_modules) and the libraries node links. */
function hostAgent(runnerBin: string): HostAgent {
  let top = path.dirname(runnerBin);
  for (let dir = top; dir !== path.dirname(dir); dir = path.dirname(dir)) if (existsSync(path.join(dir, 'node_modules'))) top = dir;
  const libs = ['/lib', '/lib64', '/usr/lib', '/usr/lib64'].filter((p) => existsSync(p));
  return { node: realpathSync(process.execPath), runnerBin, mounts: [top, ...libs] };
}

/**
 * Hosted pools for this coordinator: the providers this host offers, and the
 * members the store knows loaded, so that members still running from before
 * a restart are adopted when they say hello. Hooks into the job service.
 */
export async function createHostedPools(
  ctx: CoordinatorContext,
  dataDir: string,
  url: () => string,
  options: HostedStartOptions = {},
): Promise<HostedPools> {
  const providers: Partial<Record<HostedProvider, HostedProviderImpl>> = {};
  let runnerBin: string | undefined;
  try {
    runnerBin = findRunnerBin();
  } catch (err) {
    ctx.log.warn({ err }, 'hosted pools: rbtk-runner not found, the process provider is off');
  }
  if (runnerBin) providers.process = new ProcessProvider({ root: path.join(dataDir, HOSTED_DIR), runnerBin });
  const withHostAgent = options.dockerAgent === 'host';
  if (withHostAgent && !runnerBin) {
    ctx.log.warn('hosted pools: --hosted-docker-agent host needs rbtk-runner on this host, the docker provider is off');
  } else {
    const timeouts = dockerTimeouts(options.dockerTimeouts);
    const root = path.join(dataDir, HOSTED_DOCKER_DIR);
    // dockerode (and its HTTP, SSH and tar modules) loads when first needed: a coordinator with no
    // docker pools carries none of it (about 5 MiB of heap its major GCs would mark for nothing).
    let docker: Docker | undefined;
    // Made when a Docker Engine first answers, now or on a later pass: dockerd may start after the coordinator.
    const lazy = new LazyProvider({
      name: 'docker',
      down: 'no Docker Engine answers',
      dormant: () => !existsSync(root),
      connect: async () => {
        const engine = (docker ??= new (await import('dockerode')).default());
        // Bounded: a dockerd that takes the connection and never answers must not hold the coordinator's start.
        await withDeadline('ping', timeouts.callMs, (abortSignal) => pingAbortable(engine, abortSignal));
        return new DockerProvider({
          docker: engine,
          root,
          timeouts,
          ...(withHostAgent && runnerBin ? { hostAgent: hostAgent(runnerBin) } : {}),
        });
      },
      onUp: () => ctx.log.info('hosted pools: a Docker Engine answers, the docker provider is on'),
    });
    providers.docker = lazy;
    // A data directory that made docker members before finds the Engine now, so their passes go on at
    // once; one that never did connects when a docker pool first needs it.
    if (lazy.dormant()) {
      ctx.log.debug('hosted pools: no docker member was ever made here; the docker provider connects when a docker pool needs it');
    } else {
      await lazy.ready().catch((err: unknown) =>
        ctx.log.info({ err: (err as Error).message }, 'hosted pools: no Docker Engine answers yet; the docker provider comes on when one does'),
      );
    }
  }
  const hosted = new HostedPools({ ctx, providers: { ...providers, ...options.providers }, url, ...(runnerBin ? { agentMark: agentMark(runnerBin) } : {}) });
  await hosted.load();
  ctx.jobs.members = hosted;
  ctx.hosted = hosted;
  return hosted;
}
