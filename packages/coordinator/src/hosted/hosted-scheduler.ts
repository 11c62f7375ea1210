/*
 * When reconcile passes run: one at a time per pool, a pass asked for while
 * one runs follows it (once, however many asked), and none starts after
 * stop(), which waits for those running.
 */
export class PassScheduler {
  private readonly passes = new Map<number, Promise<void>>();
  private readonly again = new Set<number>();
  private stopped_ = false;

  constructor(
    /** One pass of the pool; a throw is logged through onError and ends nothing else. */
    private readonly runPass: (poolId: number) => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  get stopped(): boolean {
    return this.stopped_;
  }

  /** A pass soon (coalesced with others asked for in this turn). */
  soon(poolId: number): void {
    if (this.stopped_) return;
    setImmediate(() => void this.run(poolId));
  }

  /** Another pass of the pool at once after the one running. */
  passAgain(poolId: number): void {
    this.again.add(poolId);
  }

  /** Runs a pass of the pool (after the one running, if any); resolves when done. */
  run(poolId: number): Promise<void> {
    if (this.stopped_) return Promise.resolve();
    const running = this.passes.get(poolId);
    if (running) {
      this.again.add(poolId);
      return running;
    }
    const chain = (async () => {
      do {
        this.again.delete(poolId);
        try {
          await this.runPass(poolId);
        } catch (err) {
          this.onError(err);
        }
      } while (this.again.has(poolId) && !this.stopped_);
    })().finally(() => this.passes.delete(poolId));
    this.passes.set(poolId, chain);
    return chain;
  }

  /** Starts no more passes; resolves once the running ones are done. */
  async stop(): Promise<void> {
    this.stopped_ = true;
    await Promise.allSettled([...this.passes.values()]);
  }
}
