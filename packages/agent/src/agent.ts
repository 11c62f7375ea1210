import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutorName, RunnerConfig } from '@rbtk/protocol/runner';
import { controlSocketPath, resolveStateDir } from './config/paths.js';
import { removeStaleTempFiles } from './config/write.js';
import { daemonControlHandlers } from './control/handlers.js';
import { startControlServer } from './control/server.js';
import { runDaemon, type DaemonDeps, type DaemonResult } from './daemon.js';
import { DaemonState } from './daemon-state.js';
import { DrainControl } from './drain.js';
import { HostDrainFile } from './drain-file.js';
import { cleanupLeftovers, type LeftoverContainer } from './executors/docker-leftovers.js';
import type { Executor } from './executors/executor.js';
import { createExecutors, dockerExecutorOf, type ExecutorOptions } from './executors/index.js';
import { lockInstance } from './instance-lock.js';
import { collectGpuInventory, type GpuInventoryOptions } from './inventory/gpu-inventory.js';
import { GpuAllocator } from './jobs/gpu-allocator.js';
import { JobManager } from './jobs/manager.js';
import { Spool } from './jobs/spool.js';
import type { Logger } from './log.js';
import type { AgentMetrics } from './metrics/agent-metrics.js';
import type { MetricsServer } from './metrics/metrics-server.js';
import { installedPackageJson } from './upgrade.js';
import { agentVersion } from './version.js';

export interface AgentOptions extends Partial<Omit<DaemonDeps, 'config' | 'configPath' | 'logger' | 'state' | 'jobs' | 'gpus' | 'drain'>> {
  config: RunnerConfig;
  configPath: string;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** Executors to use instead of those built from runner.yaml (tests). */
  executors?: Partial<Record<ExecutorName, Executor>>;
  executorOptions?: ExecutorOptions;
  /** How nvidia-smi is found and run (tests: a stand-in on PATH, a short timeout). */
  gpuOptions?: Omit<GpuInventoryOptions, 'docker'>;
}

/**
 * What `rbtk-runner run` does: take the state directory and runner.yaml for
 * itself, recover the spool (and containers a previous run left), open the
 * control socket, run the connect loop until the signal aborts, and clean up.
 * Throws AlreadyRunningError, having touched nothing, while another daemon
 * holds either.
 */
export async function runAgent(options: AgentOptions, signal: AbortSignal): Promise<DaemonResult> {
  const stateDir = resolveStateDir(options.config, options.configPath, options.env);
  await mkdir(stateDir, { recursive: true, mode: 0o750 });
  // First of all: what follows treats every unfinished attempt, labelled container and temp
  // file as a dead run's leftover, and would kill a live daemon's jobs.
  const lock = await lockInstance(stateDir, options.configPath);
  try {
    return await runLocked(options, stateDir, signal);
  } finally {
    await lock.release();
  }
}

async function runLocked(options: AgentOptions, stateDir: string, signal: AbortSignal): Promise<DaemonResult> {
  const { config, configPath, logger } = options;
  const removed = await removeStaleTempFiles(configPath);
  if (removed.length > 0) logger.info({ files: removed }, 'removed temp files left by an interrupted config write');

  const version = options.agentVersion ?? agentVersion();
  const state = new DaemonState(config, version);
  const executors = options.executors ?? (await createExecutors(config, { logger, ...options.executorOptions }));
  const gpus = await inventoryGpus(options, executors);
  const allocator = new GpuAllocator(gpus);
  state.trackGpus(gpus, () => allocator.free());
  // prom-client is loaded only where metrics are served: an idle daemon stays small.
  const metrics = config.metrics_listen ? new (await import('./metrics/agent-metrics.js')).AgentMetrics(state) : undefined;
  const keptDrain = new HostDrainFile(stateDir);
  const drain = new DrainControl(await keptDrain.read());
  if (drain.localDrain) logger.warn({ reason: drain.localDrain.reason, since: drain.localDrain.since, file: keptDrain.path }, 'still drained on the host: taking no jobs until rbtk-runner resume');
  const jobs = new JobManager({
    refusal: () => drain.refusal(),
    runnerId: config.runner_id,
    config,
    executors,
    spool: new Spool(join(stateDir, 'spool')),
    logger,
    gpus: allocator,
    metrics,
  });
  await jobs.recover(await removeLeftoverContainers(executors, config.runner_id, logger));
  state.trackJobs(() => jobs.status());
  const control = await startControlServer(controlSocketPath(stateDir), daemonControlHandlers(state, drain, logger, keptDrain), logger);
  logger.info(
    { configPath, stateDir, controlSocket: control.path, runnerId: config.runner_id, url: config.url, agentVersion: version },
    'starting',
  );
  let metricsServer: MetricsServer | undefined;
  try {
    if (metrics) metricsServer = await (await import('./metrics/metrics-server.js')).startMetricsServer(config.metrics_listen!, metrics, logger);
    const upgradeWatch = options.upgradeWatch ?? { packageJson: installedPackageJson(options.env) };
    return await runDaemon({ ...options, agentVersion: version, state, jobs, gpus, metrics, drain, upgradeWatch }, signal);
  } finally {
    // Also after a revocation or a fatal error: no job outlives the daemon.
    await jobs.shutdown(0);
    await metricsServer?.close();
    await control.close();
  }
}

/** nvidia-smi's GPUs and whether Docker can serve them, logged once; hello carries them. */
async function inventoryGpus(options: AgentOptions, executors: Partial<Record<ExecutorName, Executor>>) {
  const docker = dockerExecutorOf(executors)?.docker;
  const { inventory, warnings } = await collectGpuInventory({
    probeImage: options.config.test_image,
    ...options.gpuOptions,
    docker,
  });
  for (const warning of warnings) options.logger.warn({ warning }, 'GPU inventory');
  if (inventory.gpus.length > 0) {
    const fields = { gpus: inventory.gpus.length, driver: inventory.driverVersion, cuda: inventory.cudaVersion, usable: inventory.usable };
    if (inventory.usable) options.logger.info(fields, 'GPUs found');
    else options.logger.warn({ ...fields, reason: inventory.reason }, 'GPUs found but not usable by jobs');
  }
  return inventory;
}

/** Containers of this runner that a previous run left behind; the attempts they ran are reported failed. */
async function removeLeftoverContainers(
  executors: Partial<Record<ExecutorName, Executor>>,
  runnerId: string,
  logger: Logger,
): Promise<LeftoverContainer[]> {
  const docker = dockerExecutorOf(executors);
  if (!docker) return [];
  try {
    const swept = await cleanupLeftovers(docker.docker, runnerId);
    for (const c of swept) {
      const fields = { container: c.name, jobId: c.jobId, attempt: c.attempt, running: c.running };
      if (c.error) logger.error({ ...fields, err: c.error }, 'cannot remove a job container left by a previous run; the next start tries again');
      else logger.warn(fields, 'removed a job container left by a previous run');
    }
    return swept;
  } catch (err) {
    // Docker down is not fatal: docker jobs will fail with Docker's own message.
    logger.warn({ err: (err as Error).message }, 'cannot list job containers left by a previous run');
    return [];
  }
}
