import { request } from 'node:http';
import type { DaemonStatus } from '../daemon-state.js';
import type { JobStatus } from '../jobs/held-attempt.js';

/** The reason of an answer when nobody listens on the socket (or it is gone): the daemon is not running. */
export const NOT_RUNNING = 'not running';

export type ControlAnswer = { running: true; status: DaemonStatus } | { running: false; reason: string };

/** drain / resume: the status after, or the daemon's refusal (a resume while it stops). */
export type ControlActionAnswer = ControlAnswer | { running: true; refused: string };

/**
 * Asks the daemon for its status over the control socket. "Not running" when
 * the socket is absent or refuses; other failures say what went wrong.
 */
export async function fetchDaemonStatus(socketPath: string, timeoutMs = 2_000): Promise<ControlAnswer> {
  const answer = await call(socketPath, 'GET', '/status', timeoutMs);
  return 'refused' in answer ? { running: false, reason: answer.refused } : answer;
}

/** POST /drain or /resume: the daemon changes its drain and answers its status. */
export function askDaemon(socketPath: string, action: 'drain' | 'resume', timeoutMs = 5_000): Promise<ControlActionAnswer> {
  return call(socketPath, 'POST', `/${action}`, timeoutMs);
}

function call(socketPath: string, method: string, path: string, timeoutMs: number): Promise<ControlActionAnswer> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path, method, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        if (res.statusCode === 409) return resolve({ running: true, refused: errorMessage(text) ?? 'refused' });
        // The daemon's own error (a drain it could not keep on disk): it runs, and says what failed.
        const message = res.statusCode === 500 ? errorMessage(text) : undefined;
        if (message) return resolve({ running: true, refused: message });
        if (res.statusCode !== 200) return resolve({ running: false, reason: `control socket answered HTTP ${res.statusCode}` });
        try {
          const status = JSON.parse(text) as DaemonStatus;
          if (typeof status?.connected !== 'boolean') throw new Error('no "connected" field');
          resolve({ running: true, status });
        } catch (err) {
          resolve({ running: false, reason: `control socket answered something unexpected: ${(err as Error).message}` });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      // Only these two mean nobody is there: a timeout or another error may be a daemon that stalls.
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') resolve({ running: false, reason: NOT_RUNNING });
      else if (err.code === 'EACCES') resolve({ running: false, reason: `cannot open ${socketPath}: permission denied` });
      else resolve({ running: false, reason: `control socket ${socketPath}: ${err.message}` });
    });
    req.end();
  });
}

function errorMessage(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown } };
    return typeof body.error?.message === 'string' ? body.error.message : undefined;
  } catch {
    return undefined;
  }
}

export type IdleAnswer =
  | { idle: true; status: DaemonStatus | null }
  /**
   * Not idle at the deadline. `unreachable`: the last polls got no answer (a
   * timeout, an error), so whether jobs still run is not known; `status` and
   * `running` are then the last the daemon said (null and none if it never did).
   */
  | { idle: false; status: DaemonStatus | null; running: JobStatus[]; unreachable?: string };

/**
 * Polls the daemon until no job runs on it, or timeoutMs passed. A daemon
 * that went away meanwhile (socket gone, nobody listening: it stopped) runs
 * nothing: idle, status null. A poll that times out or fails otherwise proves
 * nothing (an event loop stalled for 2 s, the host swapping): it is retried
 * until the deadline, never taken for idle.
 */
export async function waitForIdle(socketPath: string, timeoutMs: number, pollMs = 200, pollTimeoutMs = 2_000): Promise<IdleAnswer> {
  const deadline = Date.now() + timeoutMs;
  let status: DaemonStatus | null = null;
  let running: JobStatus[] = [];
  for (;;) {
    const answer = await fetchDaemonStatus(socketPath, pollTimeoutMs);
    let unreachable: string | undefined;
    if (answer.running) {
      status = answer.status;
      running = answer.status.jobs.filter((j) => j.state !== 'finished');
      if (running.length === 0) return { idle: true, status };
    } else if (answer.reason === NOT_RUNNING) {
      return { idle: true, status: null };
    } else {
      unreachable = answer.reason;
    }
    if (Date.now() >= deadline) return { idle: false, status, running, ...(unreachable ? { unreachable } : {}) };
    await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(1, deadline - Date.now()))));
  }
}
