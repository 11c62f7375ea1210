import type { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../log.js';
import { sleep } from '../sleep.js';

/*
 * WebSocket ping/pong to find dead TCP peers (a host that lost power sends no
 * FIN): a socket that has not answered the previous ping is terminated, which
 * frees it. Runner status is the liveness loop's business, not this one's.
 */

const answered = new WeakSet<WebSocket>();

/** Call once per accepted socket. */
export function trackPongs(ws: WebSocket): void {
  answered.add(ws);
  ws.on('pong', () => answered.add(ws));
}

export interface PingLoopDeps {
  wss: WebSocketServer;
  intervalMs: number;
  log: Logger;
}

/** Sockets pinged per event-loop turn: 10,000 in one go held the loop for ~0.4 s, heartbeats waiting. */
const PINGS_PER_TURN = 250;

export async function runPingLoop(deps: PingLoopDeps, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    await sleep(deps.intervalMs, signal);
    if (signal.aborted) return;
    let n = 0;
    for (const ws of [...deps.wss.clients]) {
      if (++n % PINGS_PER_TURN === 0) {
        await new Promise((resolve) => setImmediate(resolve));
        if (signal.aborted) return;
      }
      if (!answered.has(ws)) {
        deps.log.warn('terminating a runner socket that did not answer ping');
        ws.terminate();
        continue;
      }
      answered.delete(ws);
      try {
        ws.ping();
      } catch {
        // The socket is closing; the next round terminates it if it lingers.
      }
    }
  }
}
