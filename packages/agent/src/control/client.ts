import { request } from 'node:http';
import type { DaemonStatus } from '../daemon-state.js';

export type ControlAnswer = { running: true; status: DaemonStatus } | { running: false; reason: string };

/**
 * Asks the daemon for its status over the control socket. "Not running" when
 * the socket is absent or refuses; other failures say what went wrong.
 */
export function fetchDaemonStatus(socketPath: string, timeoutMs = 2_000): Promise<ControlAnswer> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/status', method: 'GET', timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
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
