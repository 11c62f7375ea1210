import { randomUUID } from 'node:crypto';
import { access, constants, lstat, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  RegisterRequest,
  RunnerConfig,
  type ExecutorName,
  type HostFacts,
  type Labels,
  type RegisterResponse,
} from '@rbtk/protocol/runner';
import { registerWithRetry, type RegisterRetry } from './api/register-retry.js';
import { loadConfig } from './config/load.js';
import { resolveStateDir } from './config/paths.js';
import { writeConfig } from './config/write.js';
import { AlreadyRegisteredError, ConfigNotDurableError, DaemonRunningError, UsageError } from './errors.js';
import { instanceHolder } from './instance-lock.js';
import { collectHostFacts } from './inventory/host.js';
import { agentVersion } from './version.js';

export interface RegisterRunnerOptions {
  url: string;
  registrationToken: string;
  configPath: string;
  /** Defaults to the host name. */
  name?: string;
  labels?: Labels;
  airgapped?: boolean;
  maxJobs?: number;
  executors?: ExecutorName[];
  /** Replace an existing registration in configPath. */
  force?: boolean;
  hostFacts?: () => Promise<HostFacts>;
  /** Told before each retry of the request (no answer, or a 5xx); the default retries silently. */
  onRetry?: (retry: RegisterRetry) => void;
}

export interface RegisterRunnerResult {
  response: RegisterResponse;
  config: RunnerConfig;
  /** runner.yaml was written, but its directory fsync failed: say so, the registration stands. */
  warning?: string;
}

/**
 * Exchanges a registration token for a runner id and token and writes
 * runner.yaml (0600, atomically). Every local check runs first, so a refusal
 * here never costs a use of the registration token.
 */
export async function registerRunner(options: RegisterRunnerOptions): Promise<RegisterRunnerResult> {
  const { configPath } = options;
  if (await exists(configPath)) {
    const existing = await loadConfig(configPath).catch(() => undefined);
    if (!options.force) {
      const id = existing ? ` (runner ${existing.runner_id})` : '';
      throw new AlreadyRegisteredError(`${configPath} already holds a registration${id}; pass --force to replace it`);
    }
    await refuseWhileDaemonRuns(configPath, existing);
  }
  const dir = dirname(configPath);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await access(dir, constants.W_OK).catch(() => {
    throw new Error(`cannot write to ${dir}: permission denied (run as root or as the runner's user)`);
  });

  const host = await (options.hostFacts ?? collectHostFacts)();
  // One per invocation, the same on every retry: a lost answer costs no second use of the token.
  const registrationId = randomUUID();
  const request = checked(RegisterRequest, {
    name: options.name ?? host.hostname,
    labels: options.labels ?? {},
    airgapped: options.airgapped ?? false,
    agentVersion: agentVersion(),
    host,
    registrationId,
  });
  // Check the file we will write before the coordinator spends a registration use.
  const draft = {
    url: options.url,
    runner_id: 'pending',
    token: 'pending',
    name: request.name,
    labels: request.labels,
    airgapped: request.airgapped,
    max_jobs: options.maxJobs ?? 1,
    executors: options.executors && options.executors.length > 0 ? options.executors : (['docker'] as ExecutorName[]),
  };
  checked(RunnerConfig, draft);

  const response = await registerWithRetry(options.url, options.registrationToken, { ...request, registrationId }, {
    onRetry: options.onRetry,
  });
  const config = RunnerConfig.parse({
    ...draft,
    runner_id: response.runnerId,
    token: response.token,
    name: response.name,
    pool: response.pool,
    project: response.project,
  });
  let warning: string | undefined;
  await writeConfig(configPath, {
    url: config.url,
    runner_id: config.runner_id,
    token: config.token,
    name: config.name,
    pool: config.pool,
    project: config.project,
    labels: config.labels,
    airgapped: config.airgapped,
    max_jobs: config.max_jobs,
    executors: config.executors,
  }).catch((err: unknown) => {
    if (!(err instanceof ConfigNotDurableError)) throw err;
    warning = err.message;
  });
  return { response, config, ...(warning ? { warning } : {}) };
}

/**
 * A daemon still running on the old registration keeps its token in memory and, at its
 * next rotation, would write it back over the new file: refuse until it is stopped.
 */
async function refuseWhileDaemonRuns(configPath: string, existing: RunnerConfig | undefined): Promise<void> {
  // The instance lock, not a status request: a stopped or stalled daemon does not answer one.
  const holder = await instanceHolder(resolveStateDir(existing ?? {}, configPath), configPath);
  if (!holder) return;
  const pid = holder.pid === undefined ? '' : ` (pid ${holder.pid})`;
  throw new DaemonRunningError(
    `rbtk-runner run${pid} is running on ${configPath}; stop it first (systemctl stop rbtk-runner), then register again`,
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Which flag sets each field, so a validation failure names what to change. */
const FLAG_OF: Record<string, string> = {
  name: '--name',
  labels: '--label',
  url: '--url',
  max_jobs: '--max-jobs',
  executors: '--executor',
};

function checked<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } } }, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = String(issue.path[0] ?? '');
  const flag = FLAG_OF[field] ?? field;
  const hint = field === 'name' ? ' (the host name is the default; pass --name)' : '';
  throw new UsageError(`${flag}: ${issue.message}${hint}`);
}
