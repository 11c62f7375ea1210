import { parseToken, redactToken, type RotatedToken, type RunnerConfig, type TokenConfirm } from '@rbtk/protocol/runner';
import { writeConfig as defaultWriteConfig } from './config/write.js';
import type { Logger } from './log.js';

export interface TokenRotationDeps {
  configPath: string;
  config: RunnerConfig;
  logger: Logger;
  /** Injected by tests to simulate a full disk. */
  writeConfig?: (path: string, config: RunnerConfig) => Promise<void>;
}

/**
 * Owns the runner token in memory. Every rotation and every token read goes
 * through one promise chain, so the order is always: new token durably in
 * runner.yaml -> new token in memory -> token_confirm. A reconnect that reads
 * the token waits for an in-flight write and then uses whatever is in memory;
 * a crash at any point leaves a file whose token the coordinator still accepts.
 */
export class TokenRotation {
  private config: RunnerConfig;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: TokenRotationDeps) {
    this.config = deps.config;
  }

  /** The token to authenticate with, after any rotation write in flight. */
  async currentToken(): Promise<string> {
    await this.chain;
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
    const next: RunnerConfig = { ...this.config, token: rotated.token };
    try {
      await (this.deps.writeConfig ?? defaultWriteConfig)(this.deps.configPath, next);
    } catch (err) {
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
}
