import { ROUTES } from '@rbtk/protocol';
import type { Route } from '../http/router.js';

/** Prometheus scrapes: no token, like the health checks (firewall the port instead). */
export const metricsRoutes: Route[] = [
  {
    method: 'GET',
    path: ROUTES.metrics,
    handler: async ({ ctx }) => {
      const { contentType, text } = await ctx.metrics.render();
      return { status: 200, body: text, contentType };
    },
  },
];
