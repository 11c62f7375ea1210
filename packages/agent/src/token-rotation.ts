import { parseToken, redactToken, type RotatedToken, type RunnerConfig, type TokenConfirm } from '@rbtk/protocol/runner';
import { loadConfig } from './config/load.js';
import { writeConfig as defaultWriteConfig } from './config/write.js';
import { ConfigNotDurableError } from './errors.js';
import type { Logger } from './log.js';

export interface TokenRotationDeps {
  configPath: string;
  config: RunnerConfig;
  logger: Logger;
  /** Injected by tests to simulate a full disk or one that hangs. */
  writeConfig?: (path: string, config: RunnerConfig) => Promise<void>;
  /** How long a token read waits for a rotation write in flight; default WRITE_WAIT_MS. */
  writeWaitMs?: number;
}

/**
 * How long a reconnect waits for a rotation write before it connects with the
 * token in memory anyway. A write that hangs (a stalled disk, a network mount
 * gone away) must not keep the daemon offline; the token in memory is the old
 * one, which the coordinator accepts until the new one is used or confirmed.
 */
export const WRITE_WAIT_MS = 10_000;

/**
 * Owns the runner token in memory. Every rotation and every token read goes
 * through one promise chain, so the order is always: new token durably in
 * runner.yaml -> new token in memory -> token_confirm. A reconnect that reads
 * the token waits for an in-flight write and then uses whatever is in memory;
 * a crash at any point leaves a file whose token the coordinator still accepts.
 * A write that takes longer than `writeWaitMs` no longer holds the read back.
 * A rename whose directory fsync failed gets memory but no confirm; a runner.yaml
 * that now holds another registration is left alone.
 */
export class TokenRotation {
  private config: RunnerConfig;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: TokenRotationDeps) {
    this.config = deps.config;
  }

  /** The token to authenticate with, after any rotation write in flight (waiting at most writeWaitMs for it). */
  async currentToken(): Promise<string> {
    const waitMs = this.deps.writeWaitMs ?? WRITE_WAIT_MS;
    let timer: NodeJS.Timeout | undefined;
    const waited = await Promise.race([
      this.chain.then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(resolve, waitMs, false))),
    ]);
    clearTimeout(timer);
    if (!waited) {
      this.deps.logger.warn(
        { path: this.deps.configPath, waitedMs: waitMs },
        'saving a rotated token to runner.yaml is taking too long; connecting with the token in use until it is saved',
      );
    }
    return this.config.token;
  }

  /** Resolves when no rotation is in flight. */
  async idle(): Promise<void> {
    await this.chain;
  }

  /**
   * Queues a rotation; resolves true once the token is saved, in use and the
   * confirm was handed to `confirm` (false when it could not be saved).
   */
  rotate(rotated: RotatedToken, confirm: (message: TokenConfirm) => boolean): Promise<boolean> {
    const step = this.chain.then(() => this.apply(rotated, confirm));
    this.chain = step.catch(() => undefined);
    return step;
  }

  private async apply(rotated: RotatedToken, confirm: (message: TokenConfirm) => boolean): Promise<boolean> {
    const { logger } = this.deps;
    const tokenId = rotated.id;
    if (rotated.token === this.config.token) {
      // Already saved (a repeated ack): confirming again is harmless and lets the coordinator settle.
      confirm({ type: 'token_confirm', tokenId });
      return true;
    }
    const parsed = parseToken(rotated.token);
    if (parsed?.kind !== 'run') {
      logger.warn({ tokenId, token: redactToken(rotated.token) }, 'ignoring a rotated token that is not a runner token');
      return false;
    }
    if (!(await this.stillOurs(tokenId))) return false;
    const next: RunnerConfig = { ...this.config, token: rotated.token };
    try {
      await (this.deps.writeConfig ?? defaultWriteConfig)(this.deps.configPath, next);
    } catch (err) {
      if (err instanceof ConfigNotDurableError) {
        // The file already holds the new token: memory follows it, so a reconnect uses what a restart
        // would read. No confirm, since the rename may not be on disk: the old token stays valid until
        // the new one is used.
        this.config = next;
        logger.error({ tokenId, path: this.deps.configPath, err: err.message }, 'saved the rotated token without a durable rename; using it, not confirming it');
        return false;
      }
      // Without a durable copy the new token could be lost in a crash: keep the old one, send no confirm.
      logger.warn(
        { tokenId, path: this.deps.configPath, err: (err as Error).message },
        'could not save the rotated token; keeping the old one',
      );
      return false;
    }
    this.config = next;
    const sent = confirm({ type: 'token_confirm', tokenId });
    logger.info({ tokenId, confirmSent: sent }, 'token rotated');
    return true;
  }

  /**
   * Whether runner.yaml still holds this daemon's registration. `rbtk-runner register --force`
   * (or a copied file) may have replaced it since the start: rewriting it from the config
   * loaded then would silently undo that, so the rotation is dropped instead (old token kept).
   */
  private async stillOurs(tokenId: string): Promise<boolean> {
    const { configPath: path, logger } = this.deps;
    const mine = { runnerId: this.config.runner_id, url: this.config.url };
    let onDisk: RunnerConfig;
    try {
      onDisk = await loadConfig(path);
    } catch (err) {
      logger.error({ tokenId, path, ...mine, err: (err as Error).message }, 'cannot re-read runner.yaml before saving the rotated token; not rewriting it, keeping the old token');
      return false;
    }
    if (onDisk.runner_id === mine.runnerId && onDisk.url === mine.url) return true;
    logger.error(
      { tokenId, path, ...mine, fileRunnerId: onDisk.runner_id, fileUrl: onDisk.url },
      'runner.yaml now holds another registration (register --force?); not rewriting it, keeping the old token: restart this daemon to run the new one',
    );
    return false;
  }
}
