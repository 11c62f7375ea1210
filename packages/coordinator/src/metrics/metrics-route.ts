import type { IncomingHttpHeaders } from 'node:http';
import { ErrorCode, RbtkError, ROUTES } from '@rbtk/protocol';
import { bearerToken } from '../auth/bearer.js';
import type { Route } from '../http/router.js';
import type { CoordinatorMetrics } from './coordinator-metrics.js';
import { hashSecret, verifySecret } from '../auth/secrets.js';

/** A scrape refused for its token: counted under source "metrics" (CoordinatorMetrics.apiRequestFailed), not "api". */
export class MetricsAuthError extends RbtkError {
  constructor(
    readonly reason: 'missing_token' | 'wrong_token',
    message: string,
  ) {
    super(ErrorCode.Unauthorized, message, 401);
  }
}

/**
 * With --metrics-token, a scrape must bring it as a bearer token; without
 * one, /metrics is open like the health checks (Prometheus scrapers are
 * rarely given secrets, and it shares the port runners must reach: firewall it).
 */
function checkScraper(metrics: CoordinatorMetrics, headers: IncomingHttpHeaders): void {
  if (metrics.token === undefined) return;
  const presented = bearerToken(headers);
  if (presented !== null && verifySecret(presented, hashSecret(metrics.token))) return;
  if (presented === null) {
    throw new MetricsAuthError('missing_token', 'this coordinator serves /metrics only with "Authorization: Bearer <its --metrics-token>"');
  }
  throw new MetricsAuthError('wrong_token', 'wrong metrics token: send the coordinator\'s --metrics-token as "Authorization: Bearer ..."');
}

export const metricsRoutes: Route[] = [
  {
    method: 'GET',
    path: ROUTES.metrics,
    handler: async ({ ctx, req }) => {
      checkScraper(ctx.metrics, req.headers);
      const { contentType, text } = await ctx.metrics.render();
      return { status: 200, body: text, contentType };
    },
  },
];
