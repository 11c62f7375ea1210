import { AuditResourceType, ErrorCode, RbtkError, ROUTES } from '@rbtk/protocol';
import { DEFAULT_AUDIT_LIMIT, listAudit, MAX_AUDIT_LIMIT } from '../audit.js';
import { adminScope } from './access.js';
import type { Route } from './router.js';

function parseLimit(text: string | null): number {
  if (text === null) return DEFAULT_AUDIT_LIMIT;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > MAX_AUDIT_LIMIT) {
    throw new RbtkError(ErrorCode.BadRequest, `query parameter limit: use a whole number from 1 to ${MAX_AUDIT_LIMIT}`);
  }
  return n;
}

function parseResourceType(text: string | null): AuditResourceType | undefined {
  if (text === null) return undefined;
  const parsed = AuditResourceType.safeParse(text);
  if (!parsed.success) {
    throw new RbtkError(ErrorCode.BadRequest, `query parameter resourceType: use one of ${AuditResourceType.options.join(', ')}`);
  }
  return parsed.data;
}

export const auditRoutes: Route[] = [
  {
    method: 'GET',
    path: ROUTES.audit,
    handler: async (rc) => {
      const { project } = await adminScope(rc);
      const q = rc.url.searchParams;
      const entries = await listAudit(rc.ctx.store, {
        project,
        resourceType: parseResourceType(q.get('resourceType')),
        limit: parseLimit(q.get('limit')),
      });
      return { status: 200, body: entries };
    },
  },
];
