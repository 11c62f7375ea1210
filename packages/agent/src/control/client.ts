import { request } from 'node:http';
import type { DaemonStatus } from '../daemon-state.js';
import type { JobStatus } from '../jobs/held-attempt.js';

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
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') resolve({ running: false, reason: 'not running' });
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
  | { idle: false; status: DaemonStatus; running: JobStatus[] };

/**
 * Polls the daemon until no job runs on it, or timeoutMs passed. A daemon
 * that went away meanwhile (it stopped) runs nothing: idle, status null.
 */
export async function waitForIdle(socketPath: string, timeoutMs: number, pollMs = 200): Promise<IdleAnswer> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await fetchDaemonStatus(socketPath);
    if (!answer.running) return { idle: true, status: null };
    const running = answer.status.jobs.filter((j) => j.state !== 'finished');
    if (running.length === 0) return { idle: true, status: answer.status };
    if (Date.now() >= deadline) return { idle: false, status: answer.status, running };
    await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(1, deadline - Date.now()))));
  }
}
