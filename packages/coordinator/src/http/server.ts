import type { IncomingMessage, ServerResponse } from 'node:http';
import { coerceError, ErrorCode, RbtkError } from '@rbtk/protocol';
import type { CoordinatorContext } from '../context.js';
import { metricsRoutes } from '../metrics/metrics-route.js';
import { auditRoutes } from './audit.js';
import { ClientGoneError } from './body.js';
import { healthRoutes } from './health.js';
import { hostedPoolRoutes } from './hosted-pools.js';
import { jobRoutes } from './jobs.js';
import { poolRoutes } from './pools.js';
import { projectRoutes } from './projects.js';
import { registrationRoutes } from './registration.js';
import { sendError, sendJson, sendText } from './respond.js';
import { type Route, Router } from './router.js';
import { runnerRoutes } from './runners.js';
import { knownStoreError } from '../store/store-errors.js';
import { statsRoutes } from './stats.js';
import { tokenRoutes } from './tokens.js';

/** Every REST route; registration precedes /v1/runners/:id so it is matched literally. */
export const ROUTES_TABLE: readonly Route[] = [
  ...healthRoutes,
  ...metricsRoutes,
  ...projectRoutes,
  ...poolRoutes,
  ...hostedPoolRoutes,
  ...statsRoutes,
  ...registrationRoutes,
  ...runnerRoutes,
  ...tokenRoutes,
  ...auditRoutes,
  ...jobRoutes,
];

/**
 * The node:http request listener: route, run, answer. RbtkErrors become their
 * JSON error body; anything else is logged and answered 500 with a generic
 * message, and the server keeps serving.
 */
export function createRequestListener(ctx: CoordinatorContext, routes: readonly Route[] = ROUTES_TABLE) {
  const router = new Router(routes);
  return (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    const method = req.method ?? 'GET';
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      sendError(res, 400, ErrorCode.BadRequest, 'malformed request URL');
      return;
    }
    const done = (status: number) =>
      ctx.log[status >= 500 ? 'warn' : 'debug'](
        { method, path: url.pathname, status, ms: Math.round(performance.now() - started) },
        'request',
      );

    const match = router.match(method, url.pathname);
    if (!match) {
      sendError(res, 404, ErrorCode.NotFound, `no route for ${method} ${url.pathname}`);
      done(404);
      return;
    }
    match.route
      .handler({ req, url, params: match.params, ctx })
      .then(({ status, body, contentType }) => {
        if (contentType !== undefined) sendText(res, status, String(body), contentType);
        else sendJson(res, status, body);
        done(status);
      })
      .catch((thrown: unknown) => {
        const err = knownStoreError(thrown) ?? thrown;
        if (err instanceof RbtkError) {
          ctx.metrics.apiRequestFailed(err);
          // After a too-large body the rest of the stream is junk: do not reuse the connection.
          const headers: Record<string, string> = err.code === ErrorCode.BodyTooLarge ? { connection: 'close' } : {};
          sendError(res, err.status, err.code, err.message, err.details, headers);
          done(err.status);
          return;
        }
        if (err instanceof ClientGoneError) {
          // Its connection is gone: no answer to send, and nothing an operator must look at.
          ctx.log.debug({ method, path: url.pathname, reason: err.message }, 'client went away before its request was read');
          res.destroy();
          return;
        }
        ctx.log.error({ err: coerceError(err), method, path: url.pathname }, 'request failed');
        sendError(res, 500, ErrorCode.Internal, 'internal error; the coordinator log has the details');
        done(500);
      });
  };
}
