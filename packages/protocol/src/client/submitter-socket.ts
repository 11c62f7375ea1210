import WebSocket from 'ws';
import { ROUTES } from '../constants.js';
import { ErrorCode, RbtkError } from '../errors.js';
import { ErrorBody } from '../schemas/error.js';
import { PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER } from '../version.js';

export interface SubmitterSocketOptions {
  /** The coordinator's base URL: http(s)://host:port[/prefix] (ws:// and wss:// work too). */
  url: string;
  /** An API token (rbtk_api_...) of role admin or submitter. */
  token: string;
  /** The project to act on; absent means the token's own project. */
  project?: string;
  /** How long the connection and upgrade may take. */
  connectTimeoutMs?: number;
}

/** The socket URL for a coordinator base URL, keeping a reverse proxy's path prefix. */
export function submitterSocketUrl(base: string, project?: string): URL {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new RbtkError(ErrorCode.BadRequest, `invalid coordinator URL "${base}": write it like http://127.0.0.1:7420`);
  }
  const schemes: Record<string, string> = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' };
  const scheme = schemes[url.protocol];
  if (!scheme) throw new RbtkError(ErrorCode.BadRequest, `invalid coordinator URL "${base}": use http:// or https://`);
  url.protocol = scheme;
  url.pathname = url.pathname.replace(/\/+$/, '') + ROUTES.jobsSocket;
  url.search = '';
  if (project !== undefined) url.searchParams.set('project', project);
  return url;
}

/** A refused upgrade carries an rbtk ErrorBody; anything else is described by its status. */
function refusal(status: number, text: string): RbtkError {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const body = ErrorBody.safeParse(json);
  // Codes are open-ended on the wire: a newer coordinator may send one this client does not know.
  if (body.success) return new RbtkError(body.data.error.code as ErrorCode, body.data.error.message, status, body.data.error.details);
  const code = status === 401 ? ErrorCode.Unauthorized : status === 403 ? ErrorCode.Forbidden : status === 404 ? ErrorCode.NotFound
    : status >= 502 && status <= 504 ? ErrorCode.Unavailable : ErrorCode.Internal;
  return new RbtkError(code, `the coordinator refused the job socket with HTTP ${status}${text.trim() ? `: ${text.trim().slice(0, 200)}` : ''}`, status);
}

/**
 * Opens one submitter socket. Resolves once it is open; rejects with an RbtkError: the
 * coordinator's own code and status for a refused upgrade, `unavailable` (status 0) when it
 * cannot be reached.
 */
export function openSubmitterSocket(options: SubmitterSocketOptions): Promise<WebSocket> {
  const url = submitterSocketUrl(options.url, options.project);
  const timeoutMs = options.connectTimeoutMs ?? 30_000;
  // Named as the user wrote it (http://...), as the REST client does.
  const where = `cannot reach the coordinator at ${new URL(options.url).origin}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${options.token}`, [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) },
      handshakeTimeout: timeoutMs,
    });
    let settled = false;
    const settle = (err: RbtkError | undefined) => {
      if (settled) return;
      settled = true;
      if (err) {
        ws.removeAllListeners('open');
        ws.terminate();
        reject(err);
      } else {
        resolve(ws);
      }
    };
    ws.once('open', () => settle(undefined));
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => settle(refusal(res.statusCode ?? 0, text)));
      res.on('error', () => settle(refusal(res.statusCode ?? 0, text)));
    });
    ws.on('error', (err: Error) => {
      const code = (err as { code?: unknown }).code;
      const reason = err.message || (typeof code === 'string' ? code : 'connection failed');
      settle(new RbtkError(ErrorCode.Unavailable, `${where}: ${reason}`, 0));
    });
  });
}
