/** Waits ms, or less if the signal aborts; never rejects, so loops just check signal.aborted. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** ms spread by up to ±fraction, so loops of many coordinators do not tick in step. */
export function withJitter(ms: number, fraction = 0.1): number {
  return Math.max(0, Math.round(ms * (1 + (Math.random() * 2 - 1) * fraction)));
}
