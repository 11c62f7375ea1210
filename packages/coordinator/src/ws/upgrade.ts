import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

/** A WebSocket endpoint on the shared HTTP server. */
export interface SocketEndpoint {
  /** The http server's 'upgrade' handler for this endpoint. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Pings every socket until the signal aborts. */
  runPingLoop(intervalMs: number, signal: AbortSignal): Promise<void>;
  /** Refuses new upgrades, closes every socket with 1001, waits (briefly) for them to go. */
  close(): Promise<void>;
}

/**
 * Routes an upgrade by path: one endpoint per path, the fallback (the runner
 * socket, which answers 404 for paths it does not know) for the rest.
 */
export function routeUpgrades(byPath: Record<string, SocketEndpoint>, fallback: SocketEndpoint) {
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    let path = '/';
    try {
      path = new URL(req.url ?? '/', 'http://localhost').pathname;
    } catch {
      // a malformed URL falls through to the fallback, which refuses it
    }
    (byPath[path] ?? fallback).handleUpgrade(req, socket, head);
  };
}
