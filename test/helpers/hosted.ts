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
