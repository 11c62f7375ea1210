import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Pids of the rbtk-runner members under a coordinator's data dir, from /proc (what leaks would show). */
export function memberPids(dataDir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args.some((a) => a.endsWith('rbtk-runner.js')) && args.some((a) => a.startsWith(join(dataDir, 'hosted')))) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** The process provider's live members under a coordinator's data dir, from /proc: pid, and pool and member from the --config path. */
export function processMembers(dataDir: string): { pid: number; pool: string; memberId: string }[] {
  const root = join(dataDir, 'hosted') + '/';
  const out: { pid: number; pool: string; memberId: string }[] = [];
  for (const pid of memberPids(dataDir)) {
    try {
      const config = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').find((a) => a.startsWith(root) && a.endsWith('/runner.yaml'));
      const [pool, memberId] = config ? config.slice(root.length).split('/') : [];
      if (pool && memberId) out.push({ pid, pool, memberId });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The state letter of /proc/PID/stat: T when stopped. */
export function procState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

/** Kills members left behind: they outlive a stopped coordinator by design (a restart adopts them). */
export function killMembers(dataDir: string): void {
  for (const pid of memberPids(dataDir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * A JSON call against a coordinator's REST API as its admin; `target` is read
 * on each call, so one helper serves across a coordinator's restarts.
 */
export function adminApi(target: () => { url: string; token: string }) {
  return async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const { url, token } = target();
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
    return JSON.parse(text) as T;
  };
}
