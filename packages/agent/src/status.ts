import type { Labels } from '@rbtk/protocol/runner';
import { loadConfig } from './config/load.js';
import { controlSocketPath, resolveStateDir } from './config/paths.js';
import { fetchDaemonStatus } from './control/client.js';
import type { DaemonStatus } from './daemon-state.js';

/** What `rbtk-runner status --json` prints: the config (never the token) and the daemon's view. */
export interface RunnerStatusReport {
  configPath: string;
  url: string;
  runnerId: string;
  name: string;
  pool: string | null;
  project: string | null;
  labels: Labels;
  airgapped: boolean;
  maxJobs: number;
  executors: string[];
  stateDir: string;
  controlSocket: string;
  /** A daemon answered on the control socket. */
  running: boolean;
  /** ...and it has a live, welcomed session with the coordinator. */
  connected: boolean;
  /** Why no daemon answered, when running is false. */
  reason: string | null;
  daemon: DaemonStatus | null;
}

/** Reads runner.yaml (ConfigError when it is bad) and asks the daemon, if one runs. */
export async function readRunnerStatus(configPath: string, env: NodeJS.ProcessEnv = process.env): Promise<RunnerStatusReport> {
  const config = await loadConfig(configPath);
  const stateDir = resolveStateDir(config, configPath, env);
  const socket = controlSocketPath(stateDir);
  const answer = await fetchDaemonStatus(socket);
  return {
    configPath,
    url: config.url,
    runnerId: config.runner_id,
    name: config.name,
    pool: config.pool ?? null,
    project: config.project ?? null,
    labels: config.labels,
    airgapped: config.airgapped,
    maxJobs: config.max_jobs,
    executors: config.executors,
    stateDir,
    controlSocket: socket,
    running: answer.running,
    connected: answer.running && answer.status.connected,
    reason: answer.running ? null : answer.reason,
    daemon: answer.running ? answer.status : null,
  };
}
