import { coerceError, ErrorCode, RbtkError, ROUTES } from '@rbtk/protocol';
import type { Route } from './router.js';

/** Liveness and readiness probes: no token needed. */
export const healthRoutes: Route[] = [
  { method: 'GET', path: ROUTES.health, handler: async () => ({ status: 200, body: { ok: true } }) },
  {
    method: 'GET',
    path: ROUTES.ready,
    handler: async ({ ctx }) => {
      try {
        await ctx.store.ping();
      } catch (err) {
        ctx.log.warn({ err: coerceError(err).message }, 'store did not answer the readiness check');
        throw new RbtkError(ErrorCode.Unavailable, 'the store does not answer');
      }
      return { status: 200, body: { ok: true } };
    },
  },
];
