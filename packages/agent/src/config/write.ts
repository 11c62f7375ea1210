import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { RunnerConfig, type RunnerConfigInput } from '@rbtk/protocol/runner';
import { stringify } from 'yaml';
import writeFileAtomic from 'write-file-atomic';
import { ConfigError, ConfigNotDurableError } from '../errors.js';
import { markTempFile, unmarkTempFile, writeTarget } from './write-temp.js';
import { fsyncDir } from '../fsync-dir.js';

export { removeStaleTempFiles } from './write-temp.js';

const HEADER = `# rbtk-runner configuration, managed by rbtk-runner.
# The token rotates: rbtk-runner rewrites this file atomically whenever the
# coordinator issues a new one. Stop the runner before editing other keys.
`;

/** Key order of the file, as the spec lists them. */
const KEY_ORDER: readonly (keyof RunnerConfig)[] = [
  'url',
  'runner_id',
  'token',
  'name',
  'pool',
  'project',
  'labels',
  'airgapped',
  'max_jobs',
  'executors',
  'docker_network',
  'registry',
  'test_image',
  'state_dir',
  'shutdown_timeout',
  'metrics_listen',
  'log_level',
];

/** Pauses between directory fsync attempts: a failure there may pass (EIO under load, EINTR). */
const DIR_SYNC_RETRY_MS = [20, 100, 500];

/**
 * Writes runner.yaml so that a crash at any instant leaves either the old or the
 * new file: temp file, fsync, rename (write-file-atomic, which also keeps the
 * file's owner), then an fsync of the directory so the rename itself is durable.
 * Refuses to write a config that would not load back.
 *
 * Rejects with ConfigNotDurableError when the rename happened (the file holds the
 * new config) but the directory could not be fsynced, retries included; any other
 * rejection means the file was not replaced.
 */
export async function writeConfig(path: string, config: RunnerConfigInput): Promise<void> {
  const checked = RunnerConfig.safeParse(config);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw new ConfigError(path, `refusing to write ${path}: ${issue.path.join('.') || 'config'}: ${issue.message}`);
  }
  // Resolved once and handed over resolved, so the rename and the fsync meet in one directory.
  const target = writeTarget(path);
  let tmp: string | undefined;
  const tmpfileCreated = async (name: string) => {
    tmp = name;
    await markTempFile(name);
  };
  try {
    await writeFileAtomic(target, formatConfig(config), { fsync: true, mode: 0o600, tmpfileCreated });
  } finally {
    if (tmp) await unmarkTempFile(tmp);
  }
  await syncDirRetrying(path, dirname(target));
}

async function syncDirRetrying(path: string, dir: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fsyncDir(dir);
    } catch (err) {
      const pause = DIR_SYNC_RETRY_MS[attempt];
      if (pause === undefined) {
        throw new ConfigNotDurableError(path, `wrote ${path} but could not fsync its directory ${dir}: ${(err as Error).message}; the new file may not survive a power loss`);
      }
      await delay(pause);
    }
  }
}

/** The YAML text of a config: header comment, keys in a fixed order, unset keys left out. */
export function formatConfig(config: RunnerConfigInput): string {
  const ordered: Record<string, unknown> = {};
  for (const key of KEY_ORDER) {
    if (config[key] !== undefined) ordered[key] = config[key];
  }
  return HEADER + stringify(ordered);
}

