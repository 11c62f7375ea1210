import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type HostedProviderImpl, type MemberHandle, type MemberLaunch, type OwnedMember, writeMemberConfig } from './provider.js';

const PID_FILE = 'member.pid';
const CONFIG_FILE = 'runner.yaml';
/** How long a member has to exit after SIGTERM (its runner was revoked first, so it has no jobs) before SIGKILL. */
const TERM_GRACE_MS = 5000;

export interface ProcessProviderOptions {
  /** DATA_DIR/hosted: one folder per pool, one per member below it. */
  root: string;
  /** The rbtk-runner entry point (bin/rbtk-runner.js), run with this Node. */
  runnerBin: string;
  env?: NodeJS.ProcessEnv;
}

/** The pid's command line, or null when there is no such (live) process; a zombie has an empty one. */
function cmdline(pid: number): string[] | null {
  try {
    process.kill(pid, 0);
  } catch {
    // EPERM: alive, but not ours to signal, so not one of our members either.
    return null;
  }
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    return args.length > 0 ? args : null;
  } catch {
    return null;
  }
}

/** The environment of a member: the coordinator's, without its RBTK_* settings (they are not the runner's). */
function memberEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('RBTK_')));
}

/**
 * Members as `rbtk-runner run` processes on the coordinator's host, each with
 * its own runner.yaml (0600) and state dir under root/<pool>/<member>/. They
 * run in their own process group and outlive the coordinator: a restarted
 * coordinator finds them by their pid files, checked against /proc, and adopts them.
 */
export class ProcessProvider implements HostedProviderImpl {
  readonly name = 'process';
  constructor(private readonly options: ProcessProviderOptions) {}

  private dirOf(pool: string, memberId: string): string {
    return join(this.options.root, pool, memberId);
  }

  async create(launch: MemberLaunch): Promise<MemberHandle> {
    const dir = this.dirOf(launch.pool, launch.memberId);
    await mkdir(join(dir, 'state'), { recursive: true, mode: 0o700 });
    await writeMemberConfig(join(dir, CONFIG_FILE), launch, join(dir, 'state'));
    return { dir };
  }

  async start(memberId: string, handle: MemberHandle): Promise<MemberHandle> {
    const dir = String(handle.dir);
    const pid = typeof handle.pid === 'number' ? handle.pid : null;
    if (pid !== null && this.isMember(pid, dir)) {
      // Stopped mode: resume the whole group; the runner reconnects at once on SIGCONT.
      signal(-pid, 'SIGCONT');
      return handle;
    }
    const log = openSync(join(dir, 'member.log'), 'a', 0o600);
    try {
      const child = spawn(process.execPath, [this.options.runnerBin, 'run', '--config', join(dir, CONFIG_FILE)], {
        env: memberEnv(this.options.env ?? process.env),
        stdio: ['ignore', log, log],
        detached: true, // its own process group: a signal to the coordinator's group does not reach it
      });
      child.unref();
      child.on('error', () => {}); // a failed spawn shows as a dead pid on the next pass
      if (child.pid === undefined) throw new Error(`could not start rbtk-runner for member ${memberId}`);
      await writeFile(join(dir, PID_FILE), `${child.pid}\n`, { mode: 0o600 });
      return { dir, pid: child.pid };
    } finally {
      closeSync(log);
    }
  }

  /** SIGSTOP to the member's process group (the runner and anything it started); resolves once the runner is stopped. */
  async stop(memberId: string, handle: MemberHandle): Promise<void> {
    const pid = typeof handle.pid === 'number' ? handle.pid : null;
    if (pid === null || !this.isMember(pid, String(handle.dir))) throw new Error(`member ${memberId} has no running process to stop`);
    process.kill(-pid, 'SIGSTOP');
    const deadline = Date.now() + TERM_GRACE_MS;
    while (procState(pid) !== 'T' && Date.now() < deadline) await sleep(5);
    if (procState(pid) !== 'T') throw new Error(`member ${memberId} did not stop`);
  }

  async terminate(memberId: string, handle: MemberHandle | null): Promise<void> {
    const dir = handle?.dir ? String(handle.dir) : null;
    let pid = typeof handle?.pid === 'number' ? handle.pid : null;
    if (pid === null && dir) pid = await readPid(dir);
    if (pid !== null && dir && this.isMember(pid, dir)) {
      signal(-pid, 'SIGCONT'); // a stopped member handles no SIGTERM
      signal(pid, 'SIGTERM');
      const deadline = Date.now() + TERM_GRACE_MS;
      while (this.isMember(pid, dir) && Date.now() < deadline) await sleep(50);
      if (this.isMember(pid, dir)) {
        signal(pid, 'SIGKILL');
        while (this.isMember(pid, dir)) await sleep(20);
      }
    }
    if (dir) await rm(dir, { recursive: true, force: true });
    void memberId;
  }

  async listOwned(): Promise<OwnedMember[]> {
    const owned: OwnedMember[] = [];
    for (const pool of await readdirOrEmpty(this.options.root)) {
      for (const memberId of await readdirOrEmpty(join(this.options.root, pool))) {
        const dir = this.dirOf(pool, memberId);
        const pid = await readPid(dir);
        owned.push({ memberId, handle: pid === null ? { dir } : { dir, pid }, alive: pid !== null && this.isMember(pid, dir) });
      }
    }
    return owned;
  }

  /** Whether pid is the rbtk-runner of the member in dir (and not a recycled pid of something else). */
  private isMember(pid: number, dir: string): boolean {
    const args = cmdline(pid);
    return args !== null && args.includes(join(dir, CONFIG_FILE));
  }
}

/** The state letter of /proc/PID/stat (R, S, T stopped, Z...), or null when the process is gone. */
function procState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

/** Signals a pid, or a process group when negative. */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

async function readPid(dir: string): Promise<number | null> {
  try {
    const pid = Number((await readFile(join(dir, PID_FILE), 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}
