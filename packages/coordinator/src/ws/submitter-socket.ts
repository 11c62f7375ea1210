import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  CloseCode,
  coerceError,
  ErrorCode,
  MAX_WS_FRAME_BYTES,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_HEADER,
  RbtkError,
} from '@rbtk/protocol';
import { WebSocketServer } from 'ws';
import { authenticateApi, resolveProject } from '../auth/api-auth.js';
import type { CoordinatorContext } from '../context.js';
import { runPingLoop, trackPongs } from './ping.js';
import { rejectUpgrade } from './reject.js';
import type { SocketEndpoint } from './upgrade.js';
import { DEFAULT_SUBMITTER_LIMITS, SubmitterSession, type SubmitterLimits, type SubmitterToken } from './submitter-session.js';

const CLOSE_GRACE_MS = 2000;

/**
 * The submitter WebSocket (`/v1/jobs/ws`): an API token (admin or submitter)
 * in Authorization; the protocol version header is optional, but a mismatch
 * is refused as on the runner socket. `?project=` picks the project.
 */
export function createSubmitterSocketServer(
  ctx: CoordinatorContext,
  overrides: Partial<SubmitterLimits> = {},
): SocketEndpoint {
  const limits: SubmitterLimits = { ...DEFAULT_SUBMITTER_LIMITS, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`submitter limit ${name} must be a whole number >= 1, got ${value}`);
  }
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_FRAME_BYTES, clientTracking: true });
  let closing = false;
  ctx.metrics.countSubmitterSockets(() => wss.clients.size);

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const raw = req.headers[PROTOCOL_VERSION_HEADER.toLowerCase()];
    const version = (Array.isArray(raw) ? raw[0] : raw)?.trim();
    if (version !== undefined && version !== String(PROTOCOL_VERSION)) {
      return rejectUpgrade(
        socket,
        426,
        ErrorCode.ProtocolMismatch,
        `coordinator speaks protocol ${PROTOCOL_VERSION}, client speaks protocol ${version}`,
      );
    }
    let project: string;
    let token: SubmitterToken;
    try {
      const principal = await authenticateApi(ctx.store, req.headers, ctx.now());
      const url = new URL(req.url ?? '/', 'http://localhost');
      project = await resolveProject(ctx.store, principal, url.searchParams.get('project'));
      token = { tokenId: principal.tokenId, expiresAt: principal.expiresAt };
    } catch (err) {
      ctx.metrics.apiRequestFailed(err);
      if (err instanceof RbtkError) return rejectUpgrade(socket, err.status, err.code, err.message);
      throw err;
    }
    if (closing) return rejectUpgrade(socket, 503, ErrorCode.Unavailable, 'coordinator is shutting down');
    if (socket.destroyed) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      trackPongs(ws);
      if (closing) return ws.close(CloseCode.GoingAway, 'coordinator shutting down');
      new SubmitterSession(ctx, ws, project, token, socket, limits).start();
    });
  }

  return {
    handleUpgrade(req, socket, head) {
      socket.on('error', (err) => ctx.log.debug({ err: err.message }, 'upgrade socket error'));
      upgrade(req, socket, head).catch((err: unknown) => {
        ctx.log.error({ err: coerceError(err) }, 'submitter socket upgrade failed');
        rejectUpgrade(socket, 500, ErrorCode.Internal, 'internal error');
      });
    },

    runPingLoop(intervalMs, signal) {
      return runPingLoop({ wss, intervalMs, log: ctx.log }, signal);
    },

    async close() {
      closing = true;
      for (const ws of wss.clients) ws.close(CloseCode.GoingAway, 'coordinator shutting down');
      const deadline = Date.now() + CLOSE_GRACE_MS;
      while (wss.clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
