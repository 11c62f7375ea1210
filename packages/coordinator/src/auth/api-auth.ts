import type { IncomingHttpHeaders } from 'node:http';
import { type ApiTokenRole, DEFAULT_PROJECT, ErrorCode, parseToken, RbtkError, TokenKind } from '@rbtk/protocol';
import type { Store } from '../store/store.js';
import { bearerToken } from './bearer.js';
import { verifySecret } from './secrets.js';

/** Who is calling the REST API, from their API token. */
export interface ApiPrincipal {
  tokenId: string;
  role: ApiTokenRole;
  /** null: an instance admin token, which may act on every project. */
  project: string | null;
  /** When the token stops working (epoch ms); null: until revoked. A submitter socket closes then. */
  expiresAt: number | null;
}

/** Why an API token was refused; the auth-failure metric's reason label. */
export type ApiAuthFailure = 'missing_token' | 'malformed_token' | 'unknown_token' | 'expired_token' | 'revoked_token';

/** The 401 of authenticateApi, carrying why (for the metrics; the message is for people). */
export class ApiAuthError extends RbtkError {
  constructor(
    readonly reason: ApiAuthFailure,
    message: string,
    code: ErrorCode = ErrorCode.Unauthorized,
  ) {
    super(code, message, 401);
  }
}

/** How stale a token's "last used" may get: one write per token per minute, not one per request. */
export const API_TOKEN_TOUCH_MS = 60_000;

/**
 * Authenticates `Authorization: Bearer rbtk_api_...`; throws 401 (ApiAuthError) otherwise:
 * token_expired past its expiry, token_revoked once revoked (the row stays for that).
 */
export async function authenticateApi(store: Store, headers: IncomingHttpHeaders, now: number): Promise<ApiPrincipal> {
  const raw = bearerToken(headers);
  if (!raw) throw new ApiAuthError('missing_token', 'missing API token: send "Authorization: Bearer rbtk_api_..."');
  const parsed = parseToken(raw);
  if (!parsed || parsed.kind !== TokenKind.Api) {
    throw new ApiAuthError('malformed_token', 'not an API token: expected "Authorization: Bearer rbtk_api_..."');
  }
  const row = await store.apiTokens.get(parsed.id);
  if (!row || !verifySecret(parsed.secret, row.hash)) {
    throw new ApiAuthError('unknown_token', 'API token is unknown');
  }
  // Only after the secret matched: a guessed id learns nothing about the token's state.
  if (row.revokedAt !== null) {
    throw new ApiAuthError('revoked_token', `API token ${row.id} was revoked at ${iso(row.revokedAt)}`, ErrorCode.TokenRevoked);
  }
  if (row.expiresAt !== null && now >= row.expiresAt) {
    throw new ApiAuthError(
      'expired_token',
      `API token ${row.id} expired at ${iso(row.expiresAt)}: create a new one (rbtk token create)`,
      ErrorCode.TokenExpired,
    );
  }
  if (row.lastUsedAt === null || now - row.lastUsedAt >= API_TOKEN_TOUCH_MS) {
    // Not awaited: the request does not wait for a stamp, and a lost one (a full disk) harms nothing.
    store.apiTokens.touch(row.id, now).catch(() => undefined);
  }
  return { tokenId: row.id, role: row.role, project: row.project, expiresAt: row.expiresAt };
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** Every endpoint but health checks and jobs (which submitters may use) needs an admin token. */
export function requireAdmin(principal: ApiPrincipal): void {
  if (principal.role !== 'admin') {
    throw new RbtkError(ErrorCode.Forbidden, `this endpoint needs an admin token; this token has role ${principal.role}`);
  }
}

export function requireInstanceAdmin(principal: ApiPrincipal, what: string): void {
  requireAdmin(principal);
  if (principal.project !== null) {
    throw new RbtkError(ErrorCode.Forbidden, `only the instance admin token may ${what}`);
  }
}

/**
 * The project a request acts on: `?project=NAME`, else the token's own
 * project, else `default`. A project token may only name its own project.
 */
export async function resolveProject(store: Store, principal: ApiPrincipal, requested: string | null): Promise<string> {
  const name = requested ?? principal.project ?? DEFAULT_PROJECT;
  if (principal.project !== null && principal.project !== name) {
    throw new RbtkError(ErrorCode.Forbidden, `this token belongs to project ${principal.project}`);
  }
  if (!(await store.projects.get(name))) {
    throw new RbtkError(ErrorCode.NotFound, `project "${name}" not found`);
  }
  return name;
}

/** The audit actor for an API caller. */
export function actorOf(principal: ApiPrincipal): string {
  return `admin:${principal.tokenId}`;
}
