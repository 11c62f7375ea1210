import type Docker from 'dockerode';
import type { ExecutorName, RunnerConfig } from '@rbtk/protocol';
import { DockerExecutor } from './docker.js';
import type { Executor } from './executor.js';
import { ShellExecutor } from './shell.js';

export interface ExecutorOptions {
  docker?: Docker;
  /** docker stop -t, in seconds (default 10). */
  dockerStopTimeoutS?: number;
  /** Shell jobs: SIGTERM to SIGKILL (default 10 s). */
  shellGraceMs?: number;
}

/** The executors runner.yaml enables, and nothing else: shell only when listed. */
export function createExecutors(
  config: Pick<RunnerConfig, 'executors' | 'docker_network' | 'airgapped' | 'registry'>,
  options: ExecutorOptions = {},
): Partial<Record<ExecutorName, Executor>> {
  const executors: Partial<Record<ExecutorName, Executor>> = {};
  if (config.executors.includes('docker')) {
    executors.docker = new DockerExecutor({
      docker: options.docker,
      network: config.docker_network ?? 'none',
      stopTimeoutS: options.dockerStopTimeoutS,
      airgapped: config.airgapped,
      registry: config.registry,
    });
  }
  if (config.executors.includes('shell')) executors.shell = new ShellExecutor({ graceMs: options.shellGraceMs });
  return executors;
}
