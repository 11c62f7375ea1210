import { InvalidArgumentError } from 'commander';
import { JobSpec, LabelKey, MemoryLimit, type JobSpecInput, type Labels, type PullPolicy } from '@rbtk/protocol';
import { UsageError } from './exit-codes.js';

/** What `rbtk job submit` was given on its command line. */
export interface SubmitFlags {
  pool?: string;
  selector?: Labels;
  image?: string;
  pull?: PullPolicy;
  memory?: string;
  shell?: boolean;
  require?: Labels;
  airgapped?: boolean;
  gpus?: number;
  gpuModel?: string;
  gpuMemory?: number;
  env?: Record<string, string>;
  workdir?: string;
  timeout?: string;
  retries?: number;
  idempotencyKey?: string;
  follow?: boolean;
}

/** A repeatable `key=value` flag with label keys (--selector, --require). */
export function labelFlag(flag: string, example: string) {
  return (value: string, previous: Labels = {}): Labels => {
    const eq = value.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`write it as key=value, e.g. ${flag} ${example}`);
    const key = value.slice(0, eq);
    const r = LabelKey.safeParse(key);
    if (!r.success) throw new InvalidArgumentError(r.error.issues[0]?.message ?? 'invalid key');
    if (value.length - eq - 1 > 255) throw new InvalidArgumentError('values are at most 255 characters');
    if (Object.hasOwn(previous, key)) throw new InvalidArgumentError(`"${key}" given twice`);
    return { ...previous, [key]: value.slice(eq + 1) };
  };
}

/** `--env K=V`, repeatable; the value may hold "=". */
export function parseEnv(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('write it as NAME=value, e.g. --env DEBUG=1');
  const key = value.slice(0, eq);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new InvalidArgumentError('environment variable names are letters, digits and _');
  if (Object.hasOwn(previous, key)) throw new InvalidArgumentError(`"${key}" given twice`);
  return { ...previous, [key]: value.slice(eq + 1) };
}

/** `--retries`, `--gpus`: 0 or more. */
export function parseCount(value: string): number {
  const n = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected 0 or a positive integer');
  return n;
}

/** `--memory 512m`: the protocol's MemoryLimit (Docker's units, at least 6m), kept as typed. */
export function parseMemoryFlag(value: string): string {
  const r = MemoryLimit.safeParse(value);
  if (!r.success) throw new InvalidArgumentError(r.error.issues[0]?.message ?? 'invalid memory size');
  return value;
}

/**
 * Builds the JobSpec from the flags and checks it against the protocol, so a mistake is
 * a usage error (exit 2) before anything is sent. --image means the docker executor,
 * otherwise the shell executor runs the command after `--`.
 */
export function buildJobSpec(flags: SubmitFlags, command: readonly string[]): JobSpecInput {
  if ((flags.pool === undefined) === (flags.selector === undefined)) {
    throw new UsageError('name where the job runs: --pool NAME or --selector key=value (one of them, not both)');
  }
  if (flags.image !== undefined && flags.shell) throw new UsageError('--image runs the job in docker, --shell as a process: choose one');
  if (flags.pull !== undefined && flags.image === undefined) throw new UsageError('--pull applies to docker jobs: add --image IMAGE');
  if (flags.memory !== undefined && flags.image === undefined) throw new UsageError('--memory applies to docker jobs: add --image IMAGE');
  if (flags.image === undefined && command.length === 0) {
    throw new UsageError('a shell job needs a command: rbtk job submit --pool NAME -- CMD ARGS...');
  }
  const env = flags.env ?? {};
  const executor: JobSpecInput['executor'] = flags.image !== undefined
    ? {
        type: 'docker',
        image: flags.image,
        command: command.length > 0 ? [...command] : undefined,
        env,
        workdir: flags.workdir,
        pull: flags.pull,
        ...(flags.memory !== undefined ? { memory: flags.memory } : {}),
      }
    : { type: 'shell', command: [...command], env, workdir: flags.workdir };
  const spec: JobSpecInput = {
    pool: flags.pool,
    selector: flags.selector,
    requires: {
      labels: flags.require ?? {},
      airgapped: flags.airgapped,
      gpus: flags.gpus,
      gpuModel: flags.gpuModel,
      gpuMemoryMiB: flags.gpuMemory,
    },
    executor,
    timeout: flags.timeout,
    retries: flags.retries,
    idempotencyKey: flags.idempotencyKey,
  };
  const checked = JobSpec.safeParse(spec);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    const field = issue && issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : '';
    throw new UsageError(`invalid job: ${field}${issue?.message ?? 'invalid'}`);
  }
  return spec;
}
