import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The bin: these tests run what operators run, the bundle it imports (build first: npm run build). */
export const RUNNER_BIN = fileURLToPath(new URL('../../bin/rbtk-runner.js', import.meta.url));
const BUNDLE = fileURLToPath(new URL('../../dist/bundle/rbtk-runner.js', import.meta.url));

export function assertBuilt(): void {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run "npm run build" first`);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const cleanEnv = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
  const base = { ...process.env };
  for (const key of ['RBTK_URL', 'RBTK_REGISTRATION_TOKEN', 'RBTK_RUNNER_CONFIG', 'STATE_DIRECTORY']) delete base[key];
  return { ...base, FORCE_COLOR: '0', ...env };
};

export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [RUNNER_BIN, ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** A long-running `rbtk-runner run`, its JSON log lines kept. */
export class Daemon {
  readonly lines: Record<string, unknown>[] = [];
  readonly output: string[] = [];
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  /** `as`: run it as another user (tests running as root drop to one the file modes apply to). */
  constructor(args: string[], env: NodeJS.ProcessEnv = {}, as: { uid?: number; gid?: number } = {}) {
    this.child = spawn(process.execPath, [RUNNER_BIN, ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'], ...as });
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        this.output.push(line);
        if (line.startsWith('{')) this.lines.push(JSON.parse(line) as Record<string, unknown>);
      });
    }
    this.exited = once(this.child, 'exit').then(([code]) => code as number | null);
  }

  async waitForLog(msg: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find((l) => l.msg === msg);
      if (hit) return hit;
      if (Date.now() > deadline || this.child.exitCode !== null) {
        throw new Error(`no "${msg}" log line; output:\n${this.output.join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  /** For afterEach: never leave a daemon behind. */
  async stop(): Promise<void> {
    this.kill('SIGKILL');
    await this.exited;
  }
}
