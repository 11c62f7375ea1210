import { type ApiPrincipal, authenticateApi, requireAdmin, resolveProject } from '../auth/api-auth.js';
import type { RouteContext } from './router.js';

export interface AdminScope {
  principal: ApiPrincipal;
  /** The project the request acts on (?project=, else the token's, else default). */
  project: string;
}

/** 401 without a valid API token, 403 for submitters and other projects, 404 for an unknown project. */
export async function adminScope(rc: RouteContext): Promise<AdminScope> {
  const principal = await authenticateApi(rc.ctx.store, rc.req.headers, rc.ctx.now());
  requireAdmin(principal);
  const project = await resolveProject(rc.ctx.store, principal, rc.url.searchParams.get('project'));
  return { principal, project };
}
