import { ErrorCode, JobSpec, JobState, RbtkError, ROUTES } from '@rbtk/protocol';
import { authenticateApi, resolveProject } from '../auth/api-auth.js';
import { LOG_PAGE_CHUNKS } from '../jobs/job-watch.js';
import { toJob, toLogChunk } from '../wire.js';
import { readJson } from './body.js';
import type { RouteContext, Route } from './router.js';

export const DEFAULT_JOB_LIST_LIMIT = 100;
export const MAX_JOB_LIST_LIMIT = 1000;

/** Job endpoints take admin and submitter tokens alike; the project is chosen as everywhere else. */
async function jobScope(rc: RouteContext): Promise<string> {
  const principal = await authenticateApi(rc.ctx.store, rc.req.headers, rc.ctx.now());
  return resolveProject(rc.ctx.store, principal, rc.url.searchParams.get('project'));
}

function wholeNumber(name: string, text: string | null, fallback: number, min: number, max: number): number {
  if (text === null) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    throw new RbtkError(ErrorCode.BadRequest, `query parameter ${name}: use a whole number from ${min} to ${max}`);
  }
  return n;
}

export const jobRoutes: Route[] = [
  {
    method: 'POST',
    path: ROUTES.jobs,
    handler: async (rc) => {
      const project = await jobScope(rc);
      const spec = await readJson(rc.req, JobSpec);
      const { job, created } = await rc.ctx.jobs.submit(project, spec);
      // A replay of an idempotency key answers 200 with the job it created the first time.
      return { status: created ? 201 : 200, body: toJob(job) };
    },
  },
  {
    method: 'GET',
    path: ROUTES.jobs,
    handler: async (rc) => {
      const project = await jobScope(rc);
      const q = rc.url.searchParams;
      let poolId: number | undefined;
      const poolName = q.get('pool');
      if (poolName !== null) {
        const pool = await rc.ctx.store.pools.get(project, poolName);
        if (!pool) throw new RbtkError(ErrorCode.NotFound, `pool "${poolName}" not found in project "${project}"`);
        poolId = pool.id;
      }
      const stateText = q.get('state');
      const state = stateText === null ? undefined : JobState.safeParse(stateText);
      if (state && !state.success) {
        throw new RbtkError(ErrorCode.BadRequest, `query parameter state: use one of ${JobState.options.join(', ')}`);
      }
      const limit = wholeNumber('limit', q.get('limit'), DEFAULT_JOB_LIST_LIMIT, 1, MAX_JOB_LIST_LIMIT);
      const jobs = await rc.ctx.store.jobs.list({ project, poolId, state: state?.data, limit });
      return { status: 200, body: jobs.map(toJob) };
    },
  },
  {
    method: 'GET',
    path: ROUTES.job(':id'),
    handler: async (rc) => {
      const project = await jobScope(rc);
      return { status: 200, body: toJob(await rc.ctx.jobs.find(project, rc.params.id!)) };
    },
  },
  {
    method: 'GET',
    path: ROUTES.jobLogs(':id'),
    handler: async (rc) => {
      const project = await jobScope(rc);
      const job = await rc.ctx.jobs.find(project, rc.params.id!);
      const offset = wholeNumber('offset', rc.url.searchParams.get('offset'), 0, 0, Number.MAX_SAFE_INTEGER);
      // The visible log is the current attempt's (before the first assignment there is none); an earlier
      // attempt's on request. One page per call: a client reads on from the end of the last chunk.
      const attempt = job.attempt === 0 ? 0 : wholeNumber('attempt', rc.url.searchParams.get('attempt'), job.attempt, 1, job.attempt);
      const rows = attempt === 0 ? [] : await rc.ctx.store.jobs.logs(job.id, attempt, offset, LOG_PAGE_CHUNKS);
      return { status: 200, body: rows.map((r) => toLogChunk(r, offset)) };
    },
  },
  {
    method: 'POST',
    path: ROUTES.jobCancel(':id'),
    handler: async (rc) => {
      const project = await jobScope(rc);
      return { status: 200, body: toJob(await rc.ctx.jobs.cancel(project, rc.params.id!)) };
    },
  },
];
