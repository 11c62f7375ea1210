import type Docker from 'dockerode';
import type { ExecutorName, RunnerConfig } from '@rbtk/protocol/runner';
import type { Logger } from '../log.js';
import type { DockerExecutor } from './docker.js';
import type { RemovalOptions } from './docker-removal.js';
import type { Executor } from './executor.js';
import { ShellExecutor } from './shell.js';

export interface ExecutorOptions {
  docker?: Docker;
  /** docker stop -t, in seconds (default 10). */
  dockerStopTimeoutS?: number;
  /** Shell jobs: SIGTERM to SIGKILL (default 10 s). */
  shellGraceMs?: number;
  /** Docker: how a container that cannot be removed at once (dockerd down) is tried again (default: for 3 min). */
  dockerRemoval?: Omit<RemovalOptions, 'logger'>;
  /** Where the executors report what happens outside a job's own log (a container left behind). */
  logger?: Logger;
}

/**
 * The executors runner.yaml enables, and nothing else: shell only when listed.
 * The docker executor (dockerode and its ssh and tar dependencies, some 25 MB
 * of an idle daemon's memory) is loaded only on a runner that enables it.
 */
export async function createExecutors(
  config: Pick<RunnerConfig, 'executors' | 'docker_network' | 'airgapped' | 'registry'>,
  options: ExecutorOptions = {},
): Promise<Partial<Record<ExecutorName, Executor>>> {
  const executors: Partial<Record<ExecutorName, Executor>> = {};
  if (config.executors.includes('docker')) {
    const { DockerExecutor } = await import('./docker.js');
    executors.docker = new DockerExecutor({
      docker: options.docker,
      network: config.docker_network ?? 'none',
      stopTimeoutS: options.dockerStopTimeoutS,
      airgapped: config.airgapped,
      registry: config.registry,
      logger: options.logger,
      removal: options.dockerRemoval,
    });
  }
  if (config.executors.includes('shell')) executors.shell = new ShellExecutor({ graceMs: options.shellGraceMs });
  return executors;
}

/** The Docker client of the runner's docker executor, if it has one (GPU probe, leftover cleanup). */
export function dockerExecutorOf(executors: Partial<Record<ExecutorName, Executor>>): DockerExecutor | undefined {
  const docker = executors.docker as Partial<DockerExecutor> | undefined;
  return docker?.docker ? (docker as DockerExecutor) : undefined;
}
