import { ApiTokenCreate, CloseCode, ErrorCode, parseDuration, RbtkError, ROUTES, TokenKind } from '@rbtk/protocol';
import { actorOf, requireInstanceAdmin } from '../auth/api-auth.js';
import { mintToken } from '../auth/secrets.js';
import { auditRow } from '../audit.js';
import type { ApiTokenRow } from '../store/rows.js';
import { toApiToken } from '../wire.js';
import { revokedError } from '../ws/submitter-session.js';
import { adminScope } from './access.js';
import { readJson } from './body.js';
import type { Route } from './router.js';

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * API tokens for people and job submitters: bound to one project, or
 * instance-wide (admin only, made by the instance admin). Listed without
 * their secrets; revoked rows stay as tombstones so they answer token_revoked.
 */
export const tokenRoutes: Route[] = [
  {
    method: 'POST',
    path: ROUTES.apiTokens,
    handler: async (rc) => {
      const { principal, project } = await adminScope(rc);
      const body = await readJson(rc.req, ApiTokenCreate);
      if (body.instance) {
        requireInstanceAdmin(principal, 'create instance-wide tokens');
        if (body.role !== 'admin') throw new RbtkError(ErrorCode.BadRequest, 'an instance-wide token must have role admin');
      }
      const now = rc.ctx.now();
      const minted = mintToken(TokenKind.Api);
      const row: ApiTokenRow = {
        id: minted.id,
        hash: minted.hash,
        role: body.role,
        project: body.instance ? null : project,
        name: body.name ?? null,
        createdAt: now,
        expiresAt: body.ttl === undefined ? null : now + parseDuration(body.ttl),
        lastUsedAt: null,
        revokedAt: null,
      };
      await rc.ctx.store.apiTokens.insert(
        row,
        auditRow({
          at: now,
          actor: actorOf(principal),
          action: 'token.create',
          resourceType: 'token',
          resourceId: minted.id,
          // An instance-wide token's rows go to the project the request acts on, where `rbtk audit` shows them.
          project,
          details: {
            role: body.role,
            name: body.name ?? null,
            instance: row.project === null,
            expiresAt: row.expiresAt === null ? null : iso(row.expiresAt),
          },
        }),
      );
      return { status: 201, body: toApiToken(row, minted.token) };
    },
  },
  {
    method: 'GET',
    path: ROUTES.apiTokens,
    // The project's tokens; the instance admin also sees the instance-wide ones. Never a secret or a hash.
    handler: async (rc) => {
      const { principal, project } = await adminScope(rc);
      const rows = await rc.ctx.store.apiTokens.list({ project, instanceWide: principal.project === null });
      return { status: 200, body: rows.map((r) => toApiToken(r)) };
    },
  },
  {
    method: 'DELETE',
    path: ROUTES.apiToken(':id'),
    handler: async (rc) => {
      const { principal, project } = await adminScope(rc);
      const id = rc.params.id!;
      const now = rc.ctx.now();
      const sockets = rc.ctx.sessions.submitters;
      // A project admin reaches only its project's tokens; the instance admin any token.
      const result = await rc.ctx.store.apiTokens.revoke(id, principal.project, now, (token) =>
        auditRow({
          at: now,
          actor: actorOf(principal),
          action: 'token.revoke',
          resourceType: 'token',
          resourceId: id,
          project: token.project ?? project,
          details: { role: token.role, name: token.name, instance: token.project === null, openSockets: sockets.count(id) },
        }),
      );
      switch (result.kind) {
        case 'not_found':
          throw new RbtkError(ErrorCode.NotFound, `API token ${id} not found`);
        case 'already_revoked':
          throw new RbtkError(ErrorCode.Conflict, `API token ${id} was already revoked at ${iso(result.token.revokedAt!)}`);
        case 'last_instance_admin':
          throw new RbtkError(
            ErrorCode.Conflict,
            `API token ${id} is the last instance admin token that is still valid: revoking it would lock everyone out. ` +
              'Create another first (rbtk token create --role admin --instance), then revoke this one',
          );
        case 'revoked': {
          // Committed: the token's open submitter sockets stop submitting and cancelling now, not at their next reconnect.
          const closed = sockets.closeToken(id, CloseCode.Revoked, 'API token revoked', revokedError(id));
          rc.ctx.log.info({ tokenId: id, closedSockets: closed }, 'API token revoked');
          return { status: 200, body: toApiToken(result.token) };
        }
      }
    },
  },
];
