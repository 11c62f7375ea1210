import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Assign, formatToken, type HostFacts, type RunnerConfig } from '@rbtk/protocol';
import { createLogger, type Logger } from '../../src/log.js';

export const HOST: HostFacts = { hostname: 'host-a', os: 'Debian GNU/Linux 12', arch: 'x64', cpus: 8, memoryBytes: 16e9 };

let counter = 0;
/** A runner token in the real format, with a fresh id each call. */
export function runnerToken(): { id: string; token: string } {
  const id = `tok${String(++counter).padStart(5, '0')}${randomBytes(4).toString('hex')}`;
  return { id, token: formatToken('run', id, randomBytes(32).toString('base64url')) };
}

export function runnerConfig(url: string, overrides: Partial<RunnerConfig> = {}): RunnerConfig {
  return {
    url,
    runner_id: 'runner0000000001',
    token: runnerToken().token,
    name: 'host-a',
    pool: 'ci',
    project: 'default',
    labels: { arch: 'x64' },
    airgapped: false,
    max_jobs: 2,
    executors: ['docker'],
    shutdown_timeout: '10m',
    log_level: 'info',
    ...overrides,
  };
}

export interface MemoryLog {
  logger: Logger;
  lines: Record<string, unknown>[];
  text(): string;
}

/** A real pino logger whose JSON lines are kept for assertions. */
export function memoryLogger(level: 'debug' | 'info' = 'debug'): MemoryLog {
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: createLogger({ level, destination }), lines, text: () => raw.join('\n') };
}

export async function tempDir(): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'rbtk-agent-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** An assign frame for attempt 1 of `jobId`, as the coordinator sends it (parsed, defaults filled in). */
export function assignFrame(jobId: string, spec: import('zod').input<typeof Assign>['spec'], extra: Partial<import('zod').input<typeof Assign>> = {}): Assign {
  return Assign.parse({ type: 'assign', jobId, attempt: 1, timeoutMs: 60_000, acceptWithinMs: 5_000, spec, ...extra });
}

/** Polls `check` until it holds; throws after `timeoutMs`. */
export async function waitUntil(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
