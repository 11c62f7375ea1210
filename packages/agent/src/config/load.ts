import { readFile } from 'node:fs/promises';
import { RunnerConfig } from '@rbtk/protocol/runner';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors.js';

/**
 * Reads and validates runner.yaml. Every failure is a ConfigError whose message
 * names the file and, for schema failures, the key: `runner.yaml: max_jobs: ...`.
 */
export async function loadConfig(path: string): Promise<RunnerConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(path, `${path}: no such file; run "rbtk-runner register" first`);
    if (code === 'EACCES') throw new ConfigError(path, `${path}: permission denied (the file is mode 0600; run as its owner)`);
    throw new ConfigError(path, `${path}: cannot read: ${(err as Error).message}`);
  }
  return parseConfig(text, path);
}

/** Validates the text of a runner.yaml; `path` is only used in messages. */
export function parseConfig(text: string, path: string): RunnerConfig {
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (err) {
    throw new ConfigError(path, `${path}: not valid YAML: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(path, `${path}: expected a YAML mapping of keys such as url, runner_id and token`);
  }
  const parsed = RunnerConfig.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issueKey(issue);
    throw new ConfigError(path, `${path}: ${key ? `${key}: ` : ''}${issue.message}`, key);
  }
  return parsed.data;
}

type ConfigIssue = NonNullable<ReturnType<typeof RunnerConfig.safeParse>['error']>['issues'][number];

/** The dotted key an issue is about; for unknown keys, the keys themselves. */
function issueKey(issue: ConfigIssue): string | undefined {
  if (issue.code === 'unrecognized_keys') return issue.keys.join(', ');
  return issue.path.length > 0 ? issue.path.map(String).join('.') : undefined;
}
