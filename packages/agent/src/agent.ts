import { mkdir } from 'node:fs/promises';
import type { RunnerConfig } from '@rbtk/protocol';
import { controlSocketPath, resolveStateDir } from './config/paths.js';
import { removeStaleTempFiles } from './config/write.js';
import { startControlServer } from './control/server.js';
import { runDaemon, type DaemonDeps, type DaemonResult } from './daemon.js';
import { DaemonState } from './daemon-state.js';
import type { Logger } from './log.js';
import { agentVersion } from './version.js';

export interface AgentOptions extends Partial<Omit<DaemonDeps, 'config' | 'configPath' | 'logger' | 'state'>> {
  config: RunnerConfig;
  configPath: string;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
}

/**
 * What `rbtk-runner run` does: prepare the state directory, open the control
 * socket, run the connect loop until the signal aborts, and clean up.
 */
export async function runAgent(options: AgentOptions, signal: AbortSignal): Promise<DaemonResult> {
  const { config, configPath, logger } = options;
  const stateDir = resolveStateDir(config, configPath, options.env);
  await mkdir(stateDir, { recursive: true, mode: 0o750 });
  const removed = await removeStaleTempFiles(configPath);
  if (removed.length > 0) logger.info({ files: removed }, 'removed temp files left by an interrupted config write');

  const version = options.agentVersion ?? agentVersion();
  const state = new DaemonState(config, version);
  const control = await startControlServer(controlSocketPath(stateDir), { status: () => state.snapshot() }, logger);
  logger.info(
    { configPath, stateDir, controlSocket: control.path, runnerId: config.runner_id, url: config.url, agentVersion: version },
    'starting',
  );
  try {
    return await runDaemon({ ...options, agentVersion: version, state }, signal);
  } finally {
    await control.close();
  }
}
