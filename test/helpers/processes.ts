import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = {
  coordinator: `${REPO_ROOT}packages/coordinator/bin/rbtk-coordinator.js`,
  rbtk: `${REPO_ROOT}packages/coordinator/bin/rbtk.js`,
  runner: `${REPO_ROOT}packages/agent/bin/rbtk-runner.js`,
};

export type LogLine = Record<string, unknown> & { msg?: string };

/**
 * A real child process whose stdout/stderr JSON log lines are kept, so tests
 * can wait for what the program says instead of sleeping.
 */
export class Proc {
  readonly lines: LogLine[] = [];
  readonly output: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters = new Set<() => void>();

  constructor(readonly name: string, readonly child: ChildProcess) {
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => {
        this.output.push(line);
        if (line.startsWith('{')) {
          try {
            this.lines.push(JSON.parse(line) as LogLine);
          } catch {
            // not a log line; kept in output only
          }
        }
        for (const wake of this.waiters) wake();
      });
    }
    this.exited = once(child, 'exit').then(([code, signal]) => ({ code, signal }) as never);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first log line (already seen or future) that matches. */
  waitForLog(match: (l: LogLine) => boolean, timeoutMs = 15_000, from = 0): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.lines.slice(from).find(match);
        if (hit) {
          done();
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: no matching log line in ${timeoutMs} ms; last output:\n${this.output.slice(-15).join('\n')}`));
      }, timeoutMs);
      const onExit = () => {
        check();
        if (!this.waiters.has(check)) return;
        done();
        reject(new Error(`${this.name} exited before the expected log line; last output:\n${this.output.slice(-15).join('\n')}`));
      };
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
        this.child.off('exit', onExit);
      };
      this.waiters.add(check);
      this.child.on('exit', onExit);
      check();
    });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) this.child.kill(signal);
  }

  /** Signals the process and waits for it; SIGKILL after graceMs. Resolves true when it had to be killed. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<boolean> {
    if (!this.running) return false;
    if (this.child.signalCode === null) this.child.kill('SIGCONT'); // a SIGSTOPped process cannot handle SIGTERM
    this.child.kill(signal);
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      this.kill('SIGKILL');
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
    return killed;
  }
}

const spawned: Proc[] = [];

/** Every process this test file started, running or not (each file has its own module instance), for failure-output.ts. */
export function spawnedProcesses(): readonly Proc[] {
  return spawned;
}

/** Keeps every process a test starts, so none outlives it. */
export class ProcessGroup {
  private procs: Proc[] = [];


  spawn(name: string, file: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
    const child = spawn(process.execPath, [file, ...args], {
      env: { ...process.env, ...env, FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const proc = new Proc(name, child);
    this.procs.push(proc);
    spawned.push(proc);
    return proc;
  }

  /** The running process of that name; throws when there is none. */
  find(name: string): Proc {
    const proc = [...this.procs].reverse().find((p) => p.name === name && p.running);
    if (!proc) throw new Error(`no running process named ${name}`);
    return proc;
  }

  /**
   * Stops everything with SIGTERM, as systemd would. Returns the names of the
   * processes that did not exit on their own within the grace period.
   */
  async stopAll(): Promise<string[]> {
    const procs = this.procs;
    this.procs = [];
    const killed = await Promise.all(procs.map((p) => p.stop('SIGTERM', 5_000)));
    return procs.filter((_, i) => killed[i]).map((p) => p.name);
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one of the CLIs to completion. */
export async function runCli(file: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<RunResult> {
  const child = spawn(process.execPath, [file, ...args], {
    env: { ...process.env, ...env, FORCE_COLOR: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Polls until fn returns a truthy value; the last error or value is in the message. */
export async function waitFor<T>(what: string, fn: () => Promise<T> | T, timeoutMs = 15_000, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${String(last)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
