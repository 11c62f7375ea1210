import type { IncomingHttpHeaders } from 'node:http';
import { type ApiTokenRole, DEFAULT_PROJECT, ErrorCode, parseToken, RbtkError, TokenKind } from '@rbtk/protocol';
import type { Store } from '../store/store.js';
import { bearerToken } from './bearer.js';
import { verifySecret } from './secrets.js';

/** Who is calling the REST API, from their API token. */
export interface ApiPrincipal {
  tokenId: string;
  role: ApiTokenRole;
  /** null: the instance admin token, which may act on every project. */
  project: string | null;
}

/** Why an API token was refused; the auth-failure metric's reason label. */
export type ApiAuthFailure = 'missing_token' | 'malformed_token' | 'unknown_token';

/** The 401 of authenticateApi, carrying why (for the metrics; the message is for people). */
export class ApiAuthError extends RbtkError {
  constructor(
    readonly reason: ApiAuthFailure,
    message: string,
  ) {
    super(ErrorCode.Unauthorized, message);
  }
}

/** Authenticates `Authorization: Bearer rbtk_api_...`; throws 401 (ApiAuthError) otherwise. */
export async function authenticateApi(store: Store, headers: IncomingHttpHeaders): Promise<ApiPrincipal> {
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
  return { tokenId: row.id, role: row.role, project: row.project };
}

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
