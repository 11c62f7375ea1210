import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { basename, dirname } from 'node:path';
import { writeTarget } from './config/write-temp.js';
import { AlreadyRunningError } from './errors.js';

/*
 * Why a listening socket in Linux's abstract namespace: the kernel lets one process bind a
 * name, refuses the next (EADDRINUSE) and frees it the moment that process dies, however it
 * dies (SIGKILL, OOM): no file is left behind to judge stale, and no pid to check, so pid
 * reuse cannot fool it. The alternatives fail exactly there: a pid file needs a takeover of
 * stale files that two starts can race (both unlink, both create), /proc checks only narrow
 * that window, and the control socket's file also stays behind after a SIGKILL, to be
 * unlinked by whoever comes next. Node has no flock(2).
 * Limits: abstract names are per network namespace (a second runner in a container with
 * its own network that mounts this directory is not seen; no deployment of rbtk-runner
 * does that), and a local user who binds the name first keeps the runner from starting,
 * which it says, rather than letting two run.
 */

export interface InstanceLock {
  release(): Promise<void>;
}

/**
 * Takes exclusive ownership of the state directory and of runner.yaml for this
 * process's lifetime, before anything cleans up in them: a second `run` must
 * fail before it sweeps a live daemon's jobs, containers and temp files as a
 * crash's leftovers. Both: two state directories with one runner.yaml would run
 * one runner twice (and its token rotations would get it revoked). Throws
 * AlreadyRunningError naming the holder's pid.
 */
export async function lockInstance(stateDir: string, configPath: string): Promise<InstanceLock> {
  return holdAll([await stateLock(stateDir), await configLock(configPath)]);
}

/**
 * Whether a daemon holds this state directory or runner.yaml, judged by taking the lock and
 * releasing it at once: unlike a status request, a stopped or stalled daemon still holds it.
 * A state directory that does not exist was never locked; the config's lock still counts.
 */
export async function instanceHolder(stateDir: string, configPath: string): Promise<{ pid?: number } | undefined> {
  const state = await stateLock(stateDir).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  });
  try {
    const lock = await holdAll([...(state ? [state] : []), await configLock(configPath)]);
    await lock.release();
    return undefined;
  } catch (err) {
    if (err instanceof AlreadyRunningError) return err.pid === undefined ? {} : { pid: err.pid };
    throw err;
  }
}

interface LockSpec {
  name: string;
  what: string;
}

async function stateLock(stateDir: string): Promise<LockSpec> {
  const state = await stat(stateDir, { bigint: true });
  return { name: lockName('state', `${state.dev}:${state.ino}`), what: `state directory ${stateDir}` };
}

async function configLock(configPath: string): Promise<LockSpec> {
  // runner.yaml is replaced on each rotation (a new inode): its directory and name identify it.
  const target = writeTarget(configPath);
  const configDir = await stat(dirname(target), { bigint: true });
  return { name: lockName('config', `${configDir.dev}:${configDir.ino}/${basename(target)}`), what: `config ${configPath}` };
}

async function holdAll(specs: LockSpec[]): Promise<InstanceLock> {
  const held: Server[] = [];
  try {
    for (const spec of specs) held.push(await hold(spec.name, spec.what));
  } catch (err) {
    await Promise.all(held.map(close));
    throw err;
  }
  return { release: () => Promise.all(held.map(close)).then(() => undefined) };
}

/** `\0rbtk-runner/<kind>/<hash>`: a hash keeps any path within the 107 bytes a socket name may have. */
function lockName(kind: string, identity: string): string {
  return `\0rbtk-runner/${kind}/${createHash('sha256').update(identity).digest('hex').slice(0, 32)}`;
}

async function hold(name: string, what: string): Promise<Server> {
  // Whoever connects learns the holder's pid: the refusal names it.
  const server = createServer((socket) => socket.end(`${process.pid}\n`));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(name, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    const pid = await holderPid(name);
    throw new AlreadyRunningError(
      `another rbtk-runner${pid ? ` (pid ${pid})` : ''} is already running with this ${what}; stop it first (systemctl stop rbtk-runner) — nothing was touched`,
      pid,
    );
  }
  // The lock must not keep the process alive on its own; it goes when the process does.
  server.unref();
  return server;
}

/** The pid the holder writes; undefined when it does not say within a second (stopped, busy). */
function holderPid(name: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = connect(name);
    let text = '';
    const done = (pid: number | undefined) => {
      socket.destroy();
      resolve(pid);
    };
    socket.setTimeout(1_000, () => done(undefined));
    socket.on('data', (d: Buffer) => (text += d.toString()));
    socket.on('end', () => done(/^\d+\n$/.test(text) ? Number(text.trim()) : undefined));
    socket.on('error', () => done(undefined));
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
