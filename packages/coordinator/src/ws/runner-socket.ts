import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  CloseCode,
  coerceError,
  ErrorCode,
  MAX_WS_FRAME_BYTES,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_HEADER,
  ROUTES,
} from '@rbtk/protocol';
import { WebSocketServer } from 'ws';
import { bearerToken } from '../auth/bearer.js';
import type { CoordinatorContext } from '../context.js';
import { authenticateRunnerToken } from '../rotation.js';
import { runPingLoop, trackPongs } from './ping.js';
import { rejectUpgrade } from './reject.js';
import { RunnerSession } from './runner-session.js';
import type { SocketEndpoint } from './upgrade.js';

export type RunnerSocketServer = SocketEndpoint;

/** How long a graceful close may take before sockets are cut. */
const CLOSE_GRACE_MS = 2000;

export interface RunnerSocketOptions {
  /** How long an upgraded socket may stay silent before its hello; default DEFAULT_HELLO_TIMEOUT_MS. */
  helloTimeoutMs?: number;
}

/** The runner WebSocket endpoint (`/v1/runner/ws`). */
export function createRunnerSocketServer(ctx: CoordinatorContext, options: RunnerSocketOptions = {}): RunnerSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_FRAME_BYTES, clientTracking: true });
  let closing = false;

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const path = pathOf(req);
    // A request target URL cannot parse (`//`, `//host:99999`) is the client's mistake, not a 500.
    if (path === undefined) return rejectUpgrade(socket, 400, ErrorCode.BadRequest, 'malformed request URL');
    if (path !== ROUTES.runnerSocket) {
      return rejectUpgrade(socket, 404, ErrorCode.NotFound, `no WebSocket endpoint at ${path}`);
    }
    const version = headerValue(req, PROTOCOL_VERSION_HEADER);
    if (version !== String(PROTOCOL_VERSION)) {
      const theirs =
        version === undefined ? `runner sent no ${PROTOCOL_VERSION_HEADER} header` : `runner speaks protocol ${version}`;
      return rejectUpgrade(socket, 426, ErrorCode.ProtocolMismatch, `coordinator speaks protocol ${PROTOCOL_VERSION}, ${theirs}`);
    }
    const auth = await authenticateRunnerToken(ctx, bearerToken(req.headers));
    if (!auth.ok) {
      ctx.log.warn({ code: auth.code, remote: req.socket.remoteAddress }, 'runner socket refused');
      ctx.metrics.authFailed('runner', auth.reason);
      return rejectUpgrade(socket, 401, auth.code, auth.message);
    }
    if (closing) return rejectUpgrade(socket, 503, ErrorCode.Unavailable, 'coordinator is shutting down');
    if (socket.destroyed) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      trackPongs(ws);
      if (closing) return ws.close(CloseCode.GoingAway, 'coordinator shutting down');
      new RunnerSession(ctx, ws, auth.runner, socket, options.helloTimeoutMs).start();
    });
  }

  return {
    handleUpgrade(req, socket, head) {
      // A peer reset while we authenticate or refuse must not become an uncaught error.
      socket.on('error', (err) => ctx.log.debug({ err: err.message }, 'upgrade socket error'));
      upgrade(req, socket, head).catch((err: unknown) => {
        ctx.log.error({ err: coerceError(err) }, 'runner socket upgrade failed');
        rejectUpgrade(socket, 500, ErrorCode.Internal, 'internal error');
      });
    },

    runPingLoop(intervalMs, signal) {
      return runPingLoop({ wss, intervalMs, log: ctx.log }, signal);
    },

    async close() {
      closing = true;
      ctx.sessions.closeAll(CloseCode.GoingAway, 'coordinator shutting down');
      for (const ws of wss.clients) ws.close(CloseCode.GoingAway, 'coordinator shutting down');
      const deadline = Date.now() + CLOSE_GRACE_MS;
      while (wss.clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

function pathOf(req: IncomingMessage): string | undefined {
  try {
    return new URL(req.url ?? '/', 'http://localhost').pathname;
  } catch {
    return undefined;
  }
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.trim();
}
