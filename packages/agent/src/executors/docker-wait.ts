import type Docker from 'dockerode';
import { dockerMessage, isTransientDockerError } from './docker-error.js';

/** How the container's run ended, as far as the Engine could say. */
export type WaitOutcome = { exitCode: number | null } | { error: unknown; lost: boolean };

/** After the output stream ended: how long wait() may take to answer before the Engine is asked directly. */
const ANSWER_AFTER_END_MS = 2_000;
const INSPECT_TIMEOUT_MS = 10_000;

/**
 * container.wait(), plus what it misses: the Engine answers a wait with its
 * headers at once and the body at the exit, and when dockerd goes away in
 * between, dockerode's promise never settles (the broken response has no
 * 'end'). The attach stream breaks with it, so once `outputEnded` resolves and
 * wait() stays silent, the Engine is asked on a new connection: an exited
 * container gives its exit code; no answer means the Engine is lost. A
 * container that closed its output and still runs is waited for again.
 */
export async function waitForExit(container: Docker.Container, outputEnded: Promise<void>): Promise<WaitOutcome> {
  const waited: Promise<WaitOutcome> = container.wait().then(
    (w: { StatusCode?: unknown }) => ({ exitCode: typeof w.StatusCode === 'number' ? w.StatusCode : null }),
    (error: unknown) => ({ error, lost: isTransientDockerError(error) }),
  );
  const first = await Promise.race([waited, outputEnded.then(() => undefined)]);
  if (first) return first;
  for (;;) {
    const answered = await Promise.race([waited, delay(ANSWER_AFTER_END_MS)]);
    if (answered) return answered;
    try {
      const { State } = await container.inspect({ abortSignal: AbortSignal.timeout(INSPECT_TIMEOUT_MS) });
      if (!State.Running) return { exitCode: State.ExitCode };
    } catch (error) {
      return { error, lost: isTransientDockerError(error) };
    }
  }
}

/** The result message when waiting failed. */
export function waitFailedMessage(outcome: Extract<WaitOutcome, { error: unknown }>): string {
  const why = dockerMessage(outcome.error);
  return outcome.lost ? `lost the Docker Engine while the container ran (dockerd stopped or restarting?): ${why}` : `docker: ${why}`;
}

function delay(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms).unref());
}
