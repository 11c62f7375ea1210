import { ApiTokenCreate, ROUTES, TokenKind } from '@rbtk/protocol';
import { actorOf } from '../auth/api-auth.js';
import { mintToken } from '../auth/secrets.js';
import { auditRow } from '../audit.js';
import { toApiToken } from '../wire.js';
import { adminScope } from './access.js';
import { readJson } from './body.js';
import type { Route } from './router.js';

/** API tokens for people and job submitters, always bound to one project. */
export const tokenRoutes: Route[] = [
  {
    method: 'POST',
    path: ROUTES.apiTokens,
    handler: async (rc) => {
      const { principal, project } = await adminScope(rc);
      const body = await readJson(rc.req, ApiTokenCreate);
      const now = rc.ctx.now();
      const minted = mintToken(TokenKind.Api);
      const row = { id: minted.id, hash: minted.hash, role: body.role, project, name: body.name ?? null, createdAt: now };
      await rc.ctx.store.apiTokens.insert(
        row,
        auditRow({
          at: now,
          actor: actorOf(principal),
          action: 'token.create',
          resourceType: 'token',
          resourceId: minted.id,
          project,
          details: { role: body.role, name: body.name ?? null },
        }),
      );
      return { status: 201, body: toApiToken(row, minted.token) };
    },
  },
];
