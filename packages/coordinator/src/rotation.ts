import { ErrorCode, parseToken, type RotatedToken, TokenKind } from '@rbtk/protocol';
import { verifySecret, mintToken } from './auth/secrets.js';
import { SYSTEM_ACTOR } from './audit.js';
import type { CoordinatorContext } from './context.js';
import { revokeRunner } from './revoke.js';
import type { RunnerRecord } from './store/rows.js';

/*
 * Crash-safe runner token rotation (refresh-token style). A heartbeat may hand
 * the runner a *pending* token; the old one stays valid until the runner
 * confirms the new one (after writing it to disk) or connects with it. Only
 * then does the old token become *superseded*, and a superseded token that
 * shows up again can only be a copy: the runner is revoked.
 */

/** Pendings kept per runner: enough for a few lost confirms, no more. */
export const MAX_PENDING_TOKENS = 3;
/** Superseded tokens remembered per runner for reuse detection. */
export const KEEP_SUPERSEDED_TOKENS = 20;

/** Why a runner token was refused; the auth-failure metric's reason label. */
export type RunnerAuthFailure = 'missing_token' | 'malformed_token' | 'unknown_token' | 'revoked_token' | 'superseded_token';

export type RunnerAuthResult =
  | { ok: true; runner: RunnerRecord; tokenId: string }
  | { ok: false; code: ErrorCode; message: string; reason: RunnerAuthFailure };

const unknown = (
  message = 'runner token is unknown: register the runner again',
  reason: RunnerAuthFailure = 'unknown_token',
): RunnerAuthResult => ({ ok: false, code: ErrorCode.TokenUnknown, message, reason });

/** Authenticates a runner token presented on the WebSocket upgrade. */
export async function authenticateRunnerToken(ctx: CoordinatorContext, raw: string | null): Promise<RunnerAuthResult> {
  if (!raw) {
    const message = 'missing runner token: send "Authorization: Bearer rbtk_run_..."';
    return { ok: false, code: ErrorCode.Unauthorized, message, reason: 'missing_token' };
  }
  const parsed = parseToken(raw);
  if (!parsed || parsed.kind !== TokenKind.Runner) return unknown('not a runner token: expected rbtk_run_...', 'malformed_token');
  const row = await ctx.store.runnerTokens.get(parsed.id);
  if (!row || !verifySecret(parsed.secret, row.hash)) return unknown();
  if (row.state === 'revoked') {
    return { ok: false, code: ErrorCode.TokenRevoked, message: 'this runner was revoked: register it again', reason: 'revoked_token' };
  }
  const runner = row.runnerId === null ? null : await ctx.store.runners.get(row.runnerId);
  if (!runner) return unknown();

  if (row.state === 'superseded') {
    await revokeRunner(ctx, {
      runnerId: runner.id,
      actor: SYSTEM_ACTOR,
      reason: 'superseded token reused',
      details: { tokenId: row.id },
    });
    return {
      ok: false,
      code: ErrorCode.TokenRevoked,
      message: 'a superseded runner token was used again, so the runner was revoked: register it again',
      reason: 'superseded_token',
    };
  }
  if (row.state === 'pending') {
    // The runner wrote the new token and reconnected before its confirm arrived: that counts as the confirm.
    if (await ctx.store.runnerTokens.promote(runner.id, row.id, KEEP_SUPERSEDED_TOKENS)) ctx.metrics.tokenRotations.inc();
    ctx.log.info({ runnerId: runner.id, tokenId: row.id }, 'runner token promoted on connect');
  }
  return { ok: true, runner, tokenId: row.id };
}

/** The rotation state of one session. */
export class TokenRotation {
  /**
   * The pending token this session issued and the runner has not confirmed: at most one per
   * session, so a slow disk is not flooded.
   */
  private issued: { id: string; createdAt: number } | undefined;
  /**
   * When the runner's current token was made, as this session last read or set it, so a
   * heartbeat that finds it young (most of them: every 15 s against an hourly rotation) reads
   * nothing. Only a confirm, or a new connection, promotes a token; a stale value (another
   * connection of the same runner promoted one) only moves one rotation earlier or later.
   */
  private currentCreatedAt: number | undefined;
  /**
   * Whether the runner can have no pending token but this session's: set by
   * the session's first issue, which trims those earlier sessions left (their
   * confirms lost). A later issue follows a confirm that promoted, which
   * deleted every pending, so there is nothing to count.
   */
  private noStalePendings = false;

  constructor(
    private readonly ctx: CoordinatorContext,
    private readonly runnerId: string,
  ) {}

  /** A new pending token when the current one is old enough, else undefined. */
  async onHeartbeat(): Promise<RotatedToken | undefined> {
    if (this.issued) return undefined;
    const now = this.ctx.now();
    if (this.currentCreatedAt === undefined) {
      const current = await this.ctx.store.runnerTokens.current(this.runnerId);
      if (!current) return undefined;
      this.currentCreatedAt ??= current.createdAt;
    }
    if (now - this.currentCreatedAt < this.ctx.timings.tokenRotationMs) return undefined;
    const minted = mintToken(TokenKind.Runner);
    await this.ctx.store.runnerTokens.addPending(
      { id: minted.id, runnerId: this.runnerId, hash: minted.hash, state: 'pending', createdAt: now },
      this.noStalePendings ? undefined : MAX_PENDING_TOKENS,
    );
    this.noStalePendings = true;
    this.issued = { id: minted.id, createdAt: now };
    this.ctx.log.debug({ runnerId: this.runnerId, tokenId: minted.id }, 'runner token rotation issued');
    return { id: minted.id, token: minted.token };
  }

  /** token_confirm: true when tokenId is (now) the runner's current token. */
  async onConfirm(tokenId: string): Promise<boolean> {
    const promoted = await this.ctx.store.runnerTokens.promote(this.runnerId, tokenId, KEEP_SUPERSEDED_TOKENS);
    const current = promoted ? undefined : await this.ctx.store.runnerTokens.current(this.runnerId);
    const confirmed = promoted || current?.id === tokenId;
    if (confirmed) {
      // The token's age as its row has it: the one this session issued, or read again at the next heartbeat.
      this.currentCreatedAt = this.issued?.id === tokenId ? this.issued.createdAt : current?.createdAt;
      // Confirmed without a promote (a late confirm of a token promoted before): this session's pending may remain.
      if (!promoted) this.noStalePendings = false;
      this.issued = undefined;
    }
    if (promoted) {
      this.ctx.metrics.tokenRotations.inc();
      // Debug, as is the issuing: every runner rotates (hourly by default); rbtk_token_rotations_total counts them.
      this.ctx.log.debug({ runnerId: this.runnerId, tokenId }, 'runner token rotated');
    }
    return confirmed;
  }
}
