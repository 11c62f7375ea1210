import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { HOST_DRAIN_REASON, type DrainInfo } from './drain.js';
import { fsyncDir } from './fsync-dir.js';

/** `<state dir>/drain.json`: written by `rbtk-runner drain`, removed by `resume`. */
export const DRAIN_FILE = 'drain.json';

/**
 * A drain asked for on the host, kept on disk so that a crash, a restart or
 * an upgrade's exit 75 does not take jobs again behind the operator's back.
 * Writes go through one chain, in call order: a drain and a resume asked for
 * at once leave the file as the last of them says.
 */
export class HostDrainFile {
  readonly path: string;
  private chain: Promise<void> = Promise.resolve();
  /** Whether the file is there, as far as this process wrote or read it. */
  private present = false;

  constructor(readonly stateDir: string) {
    this.path = join(stateDir, DRAIN_FILE);
  }

  /** The kept drain, or null. An unreadable file still drains: someone asked for it. */
  async read(): Promise<DrainInfo | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    this.present = true;
    try {
      const info = JSON.parse(text) as Partial<DrainInfo>;
      if (typeof info.reason === 'string' && typeof info.since === 'string') return { source: 'host', reason: info.reason, since: info.since };
    } catch {
      // Not JSON: drained all the same, with the default reason.
    }
    return { source: 'host', reason: HOST_DRAIN_REASON, since: new Date().toISOString() };
  }

  /** Keeps the drain (once: a second drain changes nothing); resolves when it is durable. */
  save(info: DrainInfo): Promise<void> {
    return this.enqueue(async () => {
      if (this.present) return;
      const body = JSON.stringify({ reason: info.reason, since: info.since });
      await writeFileAtomic(this.path, `${body}\n`, { fsync: true, mode: 0o640 });
      this.present = true;
      await fsyncDir(this.stateDir);
    });
  }

  /** Forgets the drain; resolves when the removal is durable. */
  clear(): Promise<void> {
    return this.enqueue(async () => {
      await rm(this.path, { force: true });
      this.present = false;
      await fsyncDir(this.stateDir);
    });
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.chain.then(step);
    // A failed write (a full disk) is the caller's to report; the next one still runs.
    this.chain = next.catch(() => undefined);
    return next;
  }
}

