import type { IncomingMessage } from 'node:http';
import type { CoordinatorContext } from '../context.js';

export type Method = 'GET' | 'POST' | 'DELETE';

/** What a handler sees: the request, its parsed URL, path parameters and the shared context. */
export interface RouteContext {
  req: IncomingMessage;
  url: URL;
  params: Record<string, string>;
  ctx: CoordinatorContext;
}

/** A handler's answer; no body means no content (204). Errors are thrown as RbtkError. */
export interface RouteResult {
  status: number;
  body?: unknown;
  /** Set for a body that is already text (the /metrics exposition), sent as-is instead of JSON. */
  contentType?: string;
}

export type RouteHandler = (rc: RouteContext) => Promise<RouteResult>;

export interface Route {
  method: Method;
  /** Literal segments and `:param` segments, e.g. `/v1/pools/:name/tokens`. */
  path: string;
  handler: RouteHandler;
}

export interface RouteMatch {
  route: Route;
  params: Record<string, string>;
}

const segments = (path: string): string[] => path.split('/').filter((s) => s !== '');

/**
 * A tiny router: routes are tried in order, a segment matches literally or
 * binds a `:param` (URL-decoded). Earlier routes win, so literal routes such as
 * /v1/runners/register go before /v1/runners/:id.
 */
export class Router {
  private readonly compiled: { route: Route; parts: string[] }[];

  constructor(routes: readonly Route[]) {
    // Decoded, so paths built with ROUTES.pool(':name') (which percent-encodes the colon) work too.
    this.compiled = routes.map((route) => ({ route, parts: segments(route.path).map(decodeURIComponent) }));
  }

  match(method: string, pathname: string): RouteMatch | null {
    let parts: string[];
    try {
      parts = segments(pathname).map(decodeURIComponent);
    } catch {
      return null; // malformed percent-encoding names no route
    }
    for (const { route, parts: pattern } of this.compiled) {
      if (route.method !== method || pattern.length !== parts.length) continue;
      const params: Record<string, string> = {};
      const ok = pattern.every((p, i) => {
        if (p.startsWith(':')) {
          params[p.slice(1)] = parts[i]!;
          return true;
        }
        return p === parts[i];
      });
      if (ok) return { route, params };
    }
    return null;
  }
}
