import { coerceError, type HostedPoolSpec, type ReconcileAction } from '@rbtk/protocol';
import type { CoordinatorContext } from '../context.js';
import type { CreateBackoffs } from './create-backoff.js';
import type { PoolBooks } from './hosted-books.js';
import type { MemberRegistry } from './hosted-members.js';
import type { HostedProviderImpl } from './provider.js';

/*
 * What the hosted-pools modules share: their dependencies, this process's
 * view of the members and of each pool (HostedCore), and the few helpers
 * every one of them uses. The HostedPools class owns one HostedCore; the
 * other hosted-* modules are functions of it.
 */

/** The actor of the audit rows hosted pools write. */
export const ACTOR = 'hosted';

export interface HostedPoolsDeps {
  ctx: CoordinatorContext;
  providers: Partial<Record<HostedPoolSpec['provider'], HostedProviderImpl>>;
  /** The coordinator's own URL, which members connect to; known once it listens. */
  url: () => string;
  /** Marks the agent build members run, so a new one recycles them (spec hash). */
  agentMark?: string;
}

/** Records what a pass did to a member (rbtk pool show's recent actions, and a log line). */
export type Act = (action: ReconcileAction['action'], memberId: string, reason: string) => void;

export interface HostedCore {
  readonly ctx: CoordinatorContext;
  readonly deps: HostedPoolsDeps;
  readonly members: MemberRegistry;
  readonly books: PoolBooks;
  /** Pools whose creates fail: how long each waits before the next try. */
  readonly backoffs: CreateBackoffs;
  /** Each pool's spec as of its last pass: the synchronous job hooks read it. */
  readonly specs: Map<number, HostedPoolSpec>;
}

/** Takes the runner out of dispatch at once (it is going away, or not going back to ready). */
export function retire(core: HostedCore, runnerId: string | null): void {
  const entry = runnerId ? core.ctx.jobs.index.get(runnerId) : undefined;
  if (entry) core.ctx.jobs.index.retire(entry);
}

export function logFailure(core: HostedCore, err: unknown, what: string): void {
  core.ctx.log.error({ err: coerceError(err) }, `${what} failed`);
}
