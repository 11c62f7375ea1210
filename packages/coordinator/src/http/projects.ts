import { ErrorCode, ProjectCreate, RbtkError, ROUTES } from '@rbtk/protocol';
import { actorOf, authenticateApi, requireAdmin, requireInstanceAdmin } from '../auth/api-auth.js';
import { auditRow } from '../audit.js';
import { toProject } from '../wire.js';
import { readJson } from './body.js';
import type { Route } from './router.js';

export const projectRoutes: Route[] = [
  {
    method: 'GET',
    path: ROUTES.projects,
    // The instance admin sees every project; a project's admin sees its own.
    handler: async ({ req, ctx }) => {
      const principal = await authenticateApi(ctx.store, req.headers, ctx.now());
      requireAdmin(principal);
      const all = await ctx.store.projects.list();
      const visible = principal.project === null ? all : all.filter((p) => p.name === principal.project);
      return { status: 200, body: visible.map(toProject) };
    },
  },
  {
    method: 'POST',
    path: ROUTES.projects,
    handler: async ({ req, ctx }) => {
      const principal = await authenticateApi(ctx.store, req.headers, ctx.now());
      requireInstanceAdmin(principal, 'create projects');
      const body = await readJson(req, ProjectCreate);
      const now = ctx.now();
      const row = { name: body.name, createdAt: now };
      const audit = auditRow({
        at: now,
        actor: actorOf(principal),
        action: 'project.create',
        resourceType: 'project',
        resourceId: body.name,
        project: body.name,
      });
      if (!(await ctx.store.projects.create(row, audit))) {
        throw new RbtkError(ErrorCode.Conflict, `project "${body.name}" already exists`);
      }
      return { status: 201, body: toProject(row) };
    },
  },
];
