import { chmod, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { DaemonStatus } from '../daemon-state.js';
import type { Logger } from '../log.js';

/** What the control socket can ask of the daemon. */
export interface ControlHandlers {
  status(): DaemonStatus;
  /** Takes no new jobs (the coordinator hears at once); running ones finish. Answers the status after. */
  drain(): DaemonStatus | Promise<DaemonStatus>;
  /** Lifts a drain asked for on the host; throws ControlError 409 while the daemon stops or upgrades. */
  resume(): DaemonStatus | Promise<DaemonStatus>;
}

/** A refusal with its HTTP status and error code, answered as `{error: {code, message}}`. */
export class ControlError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Route = (handlers: ControlHandlers, req: IncomingMessage) => Promise<unknown> | unknown;

/** `METHOD /path` -> handler; a new endpoint is one line here and one method above. */
const ROUTES = new Map<string, Route>([
  ['GET /status', (h) => h.status()],
  ['POST /drain', (h) => h.drain()],
  ['POST /resume', (h) => h.resume()],
]);

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * HTTP over a unix socket in the state directory, mode 0660 so an operator
 * group can ask `rbtk-runner status` without reading runner.yaml. A socket
 * file nobody answers on is stale and removed; one that answers means another
 * daemon runs with this state directory, and starting is refused.
 */
export async function startControlServer(path: string, handlers: ControlHandlers, logger: Logger): Promise<ControlServer> {
  if (await answers(path)) {
    throw new Error(`another rbtk-runner is already running: ${path} answers`);
  }
  await rm(path, { force: true });

  const server = createServer((req, res) => void handle(req, res, handlers, logger));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(path, 0o660);
  return { path, close: () => closeServer(server, path) };
}

async function handle(req: IncomingMessage, res: ServerResponse, handlers: ControlHandlers, logger: Logger): Promise<void> {
  const route = ROUTES.get(`${req.method} ${new URL(req.url ?? '/', 'http://control').pathname}`);
  try {
    if (!route) return send(res, 404, { error: { code: 'not_found', message: `no control endpoint ${req.method} ${req.url}` } });
    send(res, 200, await route(handlers, req));
  } catch (err) {
    if (err instanceof ControlError) return send(res, err.status, { error: { code: err.code, message: err.message } });
    logger.error({ err: (err as Error).message, url: req.url }, 'control request failed');
    send(res, 500, { error: { code: 'internal', message: (err as Error).message } });
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function closeServer(server: Server, path: string): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  await rm(path, { force: true });
}

/** True when something accepts connections on the socket path. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
