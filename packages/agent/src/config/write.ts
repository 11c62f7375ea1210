import { open, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { RunnerConfig, type RunnerConfigInput } from '@rbtk/protocol/runner';
import { stringify } from 'yaml';
import writeFileAtomic from 'write-file-atomic';
import { ConfigError } from '../errors.js';

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

/**
 * Writes runner.yaml so that a crash at any instant leaves either the old or the
 * new file: temp file, fsync, rename (write-file-atomic, which also keeps the
 * file's owner), then an fsync of the directory so the rename itself is durable.
 * Refuses to write a config that would not load back.
 */
export async function writeConfig(path: string, config: RunnerConfigInput): Promise<void> {
  const checked = RunnerConfig.safeParse(config);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw new ConfigError(path, `refusing to write ${path}: ${issue.path.join('.') || 'config'}: ${issue.message}`);
  }
  await writeFileAtomic(path, formatConfig(config), { fsync: true, mode: 0o600 });
  await fsyncDir(dirname(path));
}

/** The YAML text of a config: header comment, keys in a fixed order, unset keys left out. */
export function formatConfig(config: RunnerConfigInput): string {
  const ordered: Record<string, unknown> = {};
  for (const key of KEY_ORDER) {
    if (config[key] !== undefined) ordered[key] = config[key];
  }
  return HEADER + stringify(ordered);
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Removes temp files that a write killed mid-way left next to the config
 * (write-file-atomic names them `<file>.<uint32>`). Call only while no write is
 * in flight, i.e. before the daemon starts.
 */
export async function removeStaleTempFiles(path: string): Promise<string[]> {
  const base = basename(path);
  const pattern = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.\\d{1,10}$`);
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = await readdir(dirname(path));
  } catch {
    return removed;
  }
  for (const name of entries) {
    if (!pattern.test(name)) continue;
    await rm(join(dirname(path), name), { force: true });
    removed.push(name);
  }
  return removed;
}
