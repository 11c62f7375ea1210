import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { constants, homedir } from 'node:os';
import type { ExecutorSpec, ShellExecutorSpec } from '@rbtk/protocol/runner';
import {
  failedBeforeStart,
  resultOf,
  stopOnAbort,
  type AttemptRef,
  type Execution,
  type ExecutionResult,
  type ExecutionSink,
  type Executor,
  type StopReason,
} from './executor.js';
import { attemptEnv } from './shell-orphans.js';

export interface ShellExecutorOptions {
  /** SIGTERM to the process group, then SIGKILL after this long. Default 10 s. */
  graceMs?: number;
  /** HOME for jobs; default the runner's own. */
  home?: string;
}

/** Jobs get a known PATH, not the daemon's environment (which may hold secrets such as DOCKER_HOST credentials). */
const JOB_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** How long stdout/stderr may stay open after the process exited (a grandchild holding them). */
const PIPE_DRAIN_MS = 2_000;

/**
 * Runs the command as a child process in its own process group, so stopping
 * it reaches every process the job started, not only the first.
 */
export class ShellExecutor implements Executor {
  constructor(private readonly options: ShellExecutorOptions = {}) {}

  start(attempt: AttemptRef, spec: ExecutorSpec, sink: ExecutionSink, signal?: AbortSignal): Execution {
    if (spec.type !== 'shell') throw new TypeError(`the shell executor cannot run a ${spec.type} job`);
    return new ShellExecution(attempt, spec, sink, this.options, signal);
  }
}

class ShellExecution implements Execution {
  private stopped: StopReason | undefined;
  private child: ChildProcess | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private readonly done: Promise<ExecutionResult>;

  constructor(
    private readonly attempt: AttemptRef,
    spec: ShellExecutorSpec,
    sink: ExecutionSink,
    private readonly options: ShellExecutorOptions,
    signal?: AbortSignal,
  ) {
    this.done = this.run(spec, sink);
    stopOnAbort(this, signal);
  }

  wait(): Promise<ExecutionResult> {
    return this.done;
  }

  stop(reason: StopReason): void {
    if (this.stopped) return;
    this.stopped = reason;
    if (!this.child?.pid || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.terminate();
  }

  /** SIGTERM to the whole group, SIGKILL after the grace period. */
  private terminate(): void {
    this.signalGroup('SIGTERM');
    this.killTimer = setTimeout(() => this.signalGroup('SIGKILL'), this.options.graceMs ?? 10_000);
  }

  private async run(spec: ShellExecutorSpec, sink: ExecutionSink): Promise<ExecutionResult> {
    if (this.stopped) return resultOf(null, this.stopped);
    const [program, ...args] = spec.command;
    const child = spawn(program!, args, {
      detached: true,
      cwd: spec.workdir,
      env: { PATH: JOB_PATH, HOME: this.options.home ?? homedir(), ...spec.env, ...attemptEnv(this.attempt) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', resolve);
    });
    // Later errors (a signal that could not be sent) have nothing to add: the exit says it all.
    child.on('error', () => undefined);
    if (spawned) {
      // Node names the program when the working directory is what is missing: say which it was.
      const code = (spawned as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && spec.workdir !== undefined && !isDirectory(spec.workdir)) {
        return failedBeforeStart(`cannot run ${JSON.stringify(program)}: the working directory ${spec.workdir} does not exist on this runner`);
      }
      return failedBeforeStart(`cannot run ${JSON.stringify(program)}: ${spawned.message}`);
    }
    sink.started({ pgid: child.pid });
    // A stop() that came while spawning found no pid to signal.
    if (this.stopped) this.terminate();

    child.stdout!.on('data', (data: Buffer) => sink.output('stdout', data));
    child.stderr!.on('data', (data: Buffer) => sink.output('stderr', data));
    const closed = once(child, 'close');
    const [code, signalName] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    clearTimeout(this.killTimer);
    // The job is over: what it left behind in its group goes too, and lets go of the pipes.
    this.signalGroup('SIGKILL');
    const timer = setTimeout(() => {
      child.stdout!.destroy();
      child.stderr!.destroy();
    }, PIPE_DRAIN_MS);
    await closed;
    clearTimeout(timer);
    const exitCode = code ?? (signalName ? 128 + (constants.signals[signalName] ?? 0) : null);
    return resultOf(exitCode, this.stopped);
  }

  private signalGroup(signal: NodeJS.Signals): void {
    if (!this.child?.pid) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // ESRCH: the group is gone already.
    }
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
