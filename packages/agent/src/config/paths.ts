import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { RunnerConfig } from '@rbtk/protocol/runner';

export const DEFAULT_CONFIG_PATH = '/etc/rbtk-runner/runner.yaml';
export const DEFAULT_STATE_DIR = '/var/lib/rbtk-runner';
export const CONFIG_PATH_ENV = 'RBTK_RUNNER_CONFIG';

/** Where runner.yaml lives: --config, else $RBTK_RUNNER_CONFIG, else /etc/rbtk-runner/runner.yaml. */
export function resolveConfigPath(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = flag || env[CONFIG_PATH_ENV] || DEFAULT_CONFIG_PATH;
  return resolve(chosen);
}

/**
 * Where the spool and control socket live: state_dir from runner.yaml (relative
 * to the config's directory), else systemd's $STATE_DIRECTORY (its first entry),
 * else /var/lib/rbtk-runner for the default config path, else `<config dir>/state`
 * so that a runner registered into a private directory keeps everything there.
 */
export function resolveStateDir(
  config: Pick<RunnerConfig, 'state_dir'>,
  configPath: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const configDir = dirname(resolve(configPath));
  if (config.state_dir) return isAbsolute(config.state_dir) ? config.state_dir : resolve(configDir, config.state_dir);
  const systemd = env.STATE_DIRECTORY?.split(':')[0];
  if (systemd) return resolve(systemd);
  if (resolve(configPath) === DEFAULT_CONFIG_PATH) return DEFAULT_STATE_DIR;
  return join(configDir, 'state');
}

/** The daemon's control socket inside the state directory. */
export function controlSocketPath(stateDir: string): string {
  return join(stateDir, 'control.sock');
}
