import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { isNewerVersion } from '@rbtk/protocol/runner';
import type { Logger } from './log.js';
import { OWN_PACKAGE_JSON } from './version.js';

/** Names the package.json whose version counts as "installed" (tests; installs that move it). */
export const PACKAGE_JSON_ENV = 'RBTK_RUNNER_PACKAGE_JSON';
export const UPGRADE_CHECK_INTERVAL_MS = 60_000;

/** The installed agent's package.json: $RBTK_RUNNER_PACKAGE_JSON, else this agent's own. */
export function installedPackageJson(env: NodeJS.ProcessEnv = process.env): string {
  return env[PACKAGE_JSON_ENV] || fileURLToPath(OWN_PACKAGE_JSON);
}

/** The version in that package.json now; null while it cannot be read (a package manager mid-write). */
export async function readInstalledVersion(path: string): Promise<string | null> {
  try {
    const pkg = JSON.parse(await readFile(path, 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : null;
  } catch {
    return null;
  }
}

/** Ends a wait early: SIGHUP asks for the upgrade check now. */
export class Wakeup {
  private wakers = new Set<() => void>();

  wake(): void {
    for (const w of this.wakers) w();
  }

  /** Resolves true after ms or on wake(), false when the signal aborted. */
  wait(ms: number, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (result: boolean) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.wakers.delete(onWake);
        resolve(result);
      };
      const onAbort = () => done(false);
      const onWake = () => done(true);
      const timer = setTimeout(() => done(true), ms);
      signal.addEventListener('abort', onAbort, { once: true });
      this.wakers.add(onWake);
    });
  }
}

export interface UpgradeWatchDeps {
  /** The version this process loaded at start. */
  runningVersion: string;
  packageJson: string;
  logger: Logger;
  intervalMs?: number;
  wakeup?: Wakeup;
  /** A newer agent is installed: the daemon drains and exits 75 for systemd to start it. */
  onNewer(version: string): void;
}

/**
 * Re-reads the installed package.json every interval (and on wakeup) and
 * calls onNewer once when its version is later than the running one. Returns
 * then, or when the signal aborts.
 */
export async function runUpgradeWatchLoop(deps: UpgradeWatchDeps, signal: AbortSignal): Promise<void> {
  const wakeup = deps.wakeup ?? new Wakeup();
  const interval = deps.intervalMs ?? UPGRADE_CHECK_INTERVAL_MS;
  while (await wakeup.wait(interval, signal)) {
    const installed = await readInstalledVersion(deps.packageJson);
    deps.logger.debug({ installed, running: deps.runningVersion, packageJson: deps.packageJson }, 'upgrade check');
    if (installed !== null && isNewerVersion(installed, deps.runningVersion)) {
      deps.onNewer(installed);
      return;
    }
  }
}
