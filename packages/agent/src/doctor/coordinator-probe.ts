import { CloseCode, PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, ROUTES } from '@rbtk/protocol/runner';
import type { IncomingMessage } from 'node:http';
import { coordinatorError } from '../api/error-body.js';
import { coordinatorUrl } from '../api/url.js';
import { WebSocket } from '../ws.js';

export type CoordinatorProbe =
  | { ok: true }
  | { ok: false; kind: 'unreachable' | 'token' | 'protocol' | 'refused'; message: string };

/**
 * Opens the runner socket with the token and the protocol header and closes it
 * (1000) as soon as the upgrade succeeds, before any hello: the coordinator
 * checks the token and the protocol at the upgrade, so that is the whole check.
 * Caveat: the coordinator registers the socket as the runner's session at the
 * upgrade, so a daemon connected with the same token is replaced (4409) and
 * reconnects; the doctor asks a running daemon first to avoid that.
 */
export function probeCoordinator(url: string, token: string, timeoutMs = 5_000): Promise<CoordinatorProbe> {
  const target = coordinatorUrl(url, ROUTES.runnerSocket, 'ws');
  return new Promise((resolve) => {
    let settled = false;
    const ws = new WebSocket(target, {
      headers: { authorization: `Bearer ${token}`, [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) },
      handshakeTimeout: timeoutMs,
    });
    const done = (answer: CoordinatorProbe) => {
      if (settled) return;
      settled = true;
      resolve(answer);
    };
    ws.on('open', () => {
      ws.close(CloseCode.Normal, 'rbtk-runner doctor');
      // Not waiting for the close handshake: the answer is known.
      setTimeout(() => ws.terminate(), 1_000).unref();
      done({ ok: true });
    });
    ws.on('unexpected-response', (_req, res) => {
      void readBody(res).then((text) => {
        const status = res.statusCode ?? 0;
        const err = coordinatorError(status, text);
        ws.terminate();
        if (status === 401) done({ ok: false, kind: 'token', message: err.message });
        else if (status === 426) done({ ok: false, kind: 'protocol', message: err.message });
        else done({ ok: false, kind: 'refused', message: `HTTP ${status}: ${err.message}` });
      });
    });
    ws.on('error', (err) => done({ ok: false, kind: 'unreachable', message: `cannot connect to ${target.origin}: ${err.message}` }));
  });
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      if (text.length < 65_536) text += chunk;
    });
    res.on('end', () => resolve(text));
    res.on('error', () => resolve(text));
  });
}
