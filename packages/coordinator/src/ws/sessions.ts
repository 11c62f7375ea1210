import { CloseCode } from '@rbtk/protocol';
import type { RunnerRecord } from '../store/rows.js';

/** What the registry needs from a runner session. */
export interface LiveSession {
  readonly runnerId: string;
  close(code: number, reason: string): void;
  /** An operator drained or resumed the runner or its pool: tell the runner, update dispatch. */
  drainChanged?(runner: RunnerRecord): void;
}

/**
 * The live runner sessions on this coordinator, one per runner. Other modules
 * reach a runner's socket through it (revoke closes it with 4401).
 */
export class SessionRegistry {
  private readonly byRunner = new Map<string, LiveSession>();

  /** Makes `session` the runner's live one; an older session is closed with 4409. */
  add(session: LiveSession): void {
    const previous = this.byRunner.get(session.runnerId);
    this.byRunner.set(session.runnerId, session);
    if (previous && previous !== session) {
      previous.close(CloseCode.Replaced, 'replaced by a newer session of this runner');
    }
  }

  /** Forgets the session, unless a newer one has replaced it already. */
  remove(session: LiveSession): void {
    if (this.byRunner.get(session.runnerId) === session) this.byRunner.delete(session.runnerId);
  }

  get(runnerId: string): LiveSession | undefined {
    return this.byRunner.get(runnerId);
  }

  has(runnerId: string): boolean {
    return this.byRunner.has(runnerId);
  }

  /** Closes the runner's live session, if any; true when there was one. */
  close(runnerId: string, code: number, reason: string): boolean {
    const session = this.byRunner.get(runnerId);
    if (!session) return false;
    this.byRunner.delete(runnerId);
    session.close(code, reason);
    return true;
  }

  closeAll(code: number, reason: string): void {
    const all = [...this.byRunner.values()];
    this.byRunner.clear();
    for (const session of all) session.close(code, reason);
  }

  get size(): number {
    return this.byRunner.size;
  }
}
