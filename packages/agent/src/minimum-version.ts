import { isBelowVersion } from '@rbtk/protocol/runner';
import type { DrainControl } from './drain.js';
import type { Logger } from './log.js';

/** The coordinator wants a newer rbtk-runner than this one, and a restart would not give it one. */
export interface UpgradeRequired {
  /** The coordinator's minRunnerVersion. */
  minimum: string;
  running: string;
  /** The installed agent's version: what a restart would run; null when it cannot be read. */
  installed: string | null;
  since: string;
}

export interface MinimumVersionDeps {
  runningVersion: string;
  /** The installed agent's version now (its package.json); null when it cannot be read. */
  installedVersion(): Promise<string | null>;
  drain: DrainControl;
  logger: Logger;
  /** Drain, let the jobs finish, exit 75 (systemd restarts it). */
  upgrade(reason: string): void;
}

/**
 * Acts on the coordinator's minRunnerVersion (welcome, each heartbeat_ack).
 * Exiting 75 helps only when the installed agent differs and meets it: then
 * upgrade(). Otherwise systemd would start the same old agent again, every
 * RestartSec, forever; so it stays connected and drained (no jobs), says so
 * once, and the upgrade watch ends it when a newer package is installed.
 */
export class MinimumVersionGate {
  private seen: string | undefined;
  private blocked: UpgradeRequired | null = null;
  private pending: Promise<void> = Promise.resolve();

  constructor(private readonly deps: MinimumVersionDeps) {}

  /** Set while it waits, drained, for a newer agent to be installed. */
  get upgradeRequired(): UpgradeRequired | null {
    return this.blocked;
  }

  /** Each minimum the coordinator names (undefined: none); a repeat of the last one changes nothing. */
  check(minimum: string | undefined): void {
    if (minimum === this.seen) return;
    this.seen = minimum;
    // One after another: the installed version is read from disk, and a later minimum wins.
    this.pending = this.pending.then(() => this.evaluate(minimum));
  }

  /** Resolves once the checks asked for so far are done. */
  idle(): Promise<void> {
    return this.pending;
  }

  private async evaluate(minimum: string | undefined): Promise<void> {
    const { runningVersion: running, logger } = this.deps;
    if (minimum === undefined || !isBelowVersion(running, minimum)) {
      // Only a host drain can be lifted: one restart, into this same agent, takes jobs again.
      if (this.blocked) this.deps.upgrade(`the coordinator no longer requires rbtk-runner ${this.blocked.minimum}: restarting to take jobs again`);
      return;
    }
    const installed = await this.deps.installedVersion();
    if (minimum !== this.seen) return; // a later minimum arrived meanwhile: its own check decides
    const required = `the coordinator requires rbtk-runner ${minimum} or later; this is ${running}`;
    if (installed !== null && installed !== running && !isBelowVersion(installed, minimum)) {
      this.deps.upgrade(`${required}; ${installed} is installed`);
      return;
    }
    const onDisk = installed === null ? 'the installed version cannot be read' : `the installed one is ${installed}`;
    this.blocked = { minimum, running, installed, since: this.blocked?.since ?? new Date().toISOString() };
    this.deps.drain.drain('upgrade', `${required} and ${onDisk}: install rbtk-runner ${minimum} or later`);
    logger.error(
      { minimum, running, installed },
      `${required} and ${onDisk}, so a restart would not help: taking no jobs until rbtk-runner ${minimum} or later is installed (it then restarts into it)`,
    );
  }
}
