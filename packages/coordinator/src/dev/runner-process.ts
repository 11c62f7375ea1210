import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN_IN_PACKAGE = join('bin', 'rbtk-runner.js');

/** The built bundle that the committed bin (bin/rbtk-runner.js) runs: `npm run build` makes it. */
export const runnerBundle = (runnerBin: string): string => resolve(dirname(runnerBin), '..', 'dist', 'bundle', 'rbtk-runner.js');

/**
 * The rbtk-runner entry point: $RBTK_RUNNER_BIN, else @rbtk/agent in a
 * node_modules above this file (a workspace checkout links it at the root,
 * an install puts it next to @rbtk/coordinator), else the sibling package of
 * a source checkout. The dev fleet runs it as a real daemon, a child process.
 */
export function findRunnerBin(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RBTK_RUNNER_BIN) return resolve(env.RBTK_RUNNER_BIN);
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates: string[] = [];
  for (let dir = here; ; dir = dirname(dir)) {
    candidates.push(join(dir, 'node_modules', '@rbtk', 'agent', BIN_IN_PACKAGE));
    if (dirname(dir) === dir) break;
  }
  // packages/coordinator/dist/dev → packages/agent
  candidates.push(resolve(here, '..', '..', '..', 'agent', BIN_IN_PACKAGE));
  const bin = candidates.find((c) => existsSync(c));
  if (!bin) throw new Error('cannot find rbtk-runner (the @rbtk/agent package): install it next to @rbtk/coordinator, or set RBTK_RUNNER_BIN');
  // The committed bin imports the built bundle; a fresh clone has none yet.
  if (!existsSync(runnerBundle(bin))) {
    throw new Error(`${bin} is not built yet: run "npm run build" first`);
  }
  return bin;
}

export interface Captured {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `rbtk-runner ARGS` to completion, output captured (register, status). */
export function runRunnerCommand(bin: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Captured> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

export interface DaemonExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * `rbtk-runner run` as a child process whose output goes straight to ours.
 * It runs in its own process group, so a Ctrl-C in the terminal reaches only
 * the dev fleet, which then stops the runner first (SIGTERM: drain) and the
 * coordinator after it.
 */
export class RunnerDaemon {
  readonly exited: Promise<DaemonExit>;
  private readonly child: ChildProcess;
  private readonly killOnExit = () => this.kill('SIGKILL');

  constructor(bin: string, configPath: string, env: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, [bin, 'run', '--config', configPath], {
      env,
      stdio: ['ignore', 'inherit', 'inherit'],
      detached: true,
    });
    this.exited = new Promise((resolvePromise) => {
      this.child.once('exit', (code, signal) => {
        process.off('exit', this.killOnExit);
        resolvePromise({ code, signal });
      });
      this.child.once('error', () => {
        process.off('exit', this.killOnExit);
        resolvePromise({ code: null, signal: null });
      });
    });
    // A dev fleet that dies without stopping it leaves no runner behind.
    process.on('exit', this.killOnExit);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined;
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      this.child.kill(signal);
    } catch {
      // already gone
    }
  }
}
