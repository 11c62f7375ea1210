import { CloseCode } from '@rbtk/protocol';
import type { RunnerRecord } from '../store/rows.js';

/** What the registry needs from a runner session. */
export interface LiveSession {
  readonly runnerId: string;
  close(code: number, reason: string): void;
  /** An operator drained or resumed the runner or its pool: tell the runner, update dispatch. */
  drainChanged?(runner: RunnerRecord): void;
}

/** What the registry needs from a submitter session. */
export interface LiveSubmitter {
  readonly tokenId: string;
  close(code: number, reason: string, error?: { code: string; message: string }): void;
}

/**
 * The open submitter sockets (`/v1/jobs/ws`), by the API token each was
 * opened with: a revoked token's sockets are closed at once (4401) instead of
 * submitting and cancelling on until they happen to disconnect.
 */
export class SubmitterSessions {
  private readonly byToken = new Map<string, Set<LiveSubmitter>>();

  add(session: LiveSubmitter): void {
    let set = this.byToken.get(session.tokenId);
    if (!set) this.byToken.set(session.tokenId, (set = new Set()));
    set.add(session);
  }

  remove(session: LiveSubmitter): void {
    const set = this.byToken.get(session.tokenId);
    if (!set?.delete(session)) return;
    if (set.size === 0) this.byToken.delete(session.tokenId);
  }

  /** Closes every socket of the token, telling each why first; how many there were. */
  closeToken(tokenId: string, code: number, reason: string, error?: { code: string; message: string }): number {
    const set = this.byToken.get(tokenId);
    if (!set) return 0;
    this.byToken.delete(tokenId);
    for (const session of set) session.close(code, reason, error);
    return set.size;
  }

  /** Open sockets of the token. */
  count(tokenId: string): number {
    return this.byToken.get(tokenId)?.size ?? 0;
  }
}

/**
 * The live sessions on this coordinator: runners, one per runner (other
 * modules reach a runner's socket through it; revoke closes it with 4401),
 * and submitters by API token (`submitters`).
 */
export class SessionRegistry {
  private readonly byRunner = new Map<string, LiveSession>();
  readonly submitters = new SubmitterSessions();

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
