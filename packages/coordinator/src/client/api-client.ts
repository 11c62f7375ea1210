import { Agent } from 'undici';
import {
  ApiToken,
  ApiTokenCreate,
  AuditEntry,
  ErrorCode,
  HostedPoolStatus,
  HostedPoolUpdate,
  Job,
  JobSpec,
  LogChunk,
  Pool,
  PoolCreate,
  PoolStats,
  Project,
  ProjectCreate,
  RbtkError,
  RegistrationToken,
  RegistrationTokenCreate,
  ROUTES,
  Runner,
  type AuditResourceType,
  type JobSpecInput,
  type JobState,
  type PoolCreateInput,
  type RegistrationTokenCreateInput,
} from '@rbtk/protocol';
import { apiExchange, apiRequest, arrayOf, type ApiCall, type Transport } from './api-request.js';
import { checkBody } from './check-body.js';

export interface ApiClientOptions {
  /** The coordinator's base URL, e.g. http://127.0.0.1:7420. */
  url: string;
  /** An API token (rbtk_api_...); requests go without Authorization when absent. */
  token?: string;
  /** The project to act on; absent means the token's own project, else `default`. */
  project?: string;
  /** Per-request limit; a coordinator that does not answer in time counts as unreachable. */
  timeoutMs?: number;
}

export interface JobQuery {
  pool?: string;
  state?: JobState;
  /** The newest N jobs (the coordinator's default is 100). */
  limit?: number;
}

export interface AuditQuery {
  resourceType?: AuditResourceType;
  /** The latest N rows (the coordinator's default is 100). */
  limit?: number;
}

/**
 * The coordinator's REST API for operators, one method per endpoint. Every answer is
 * validated against the protocol schema; every failure is an RbtkError (see apiRequest).
 * Call close() when done so the connection pool does not hold the process open.
 */
export class ApiClient {
  private readonly transport: Transport;

  constructor(private readonly options: ApiClientOptions) {
    let baseUrl: URL;
    try {
      baseUrl = new URL(options.url);
    } catch {
      throw new RbtkError(ErrorCode.BadRequest, `invalid coordinator URL "${options.url}": write it like http://127.0.0.1:7420`);
    }
    if (baseUrl.protocol !== 'http:' && baseUrl.protocol !== 'https:') {
      throw new RbtkError(ErrorCode.BadRequest, `invalid coordinator URL "${options.url}": use http:// or https://`);
    }
    this.transport = {
      baseUrl,
      token: options.token,
      timeoutMs: options.timeoutMs ?? 30_000,
      dispatcher: new Agent({ connect: { timeout: options.timeoutMs ?? 30_000 } }),
    };
  }

  get url(): string {
    return this.transport.baseUrl.href;
  }

  async close(): Promise<void> {
    await this.transport.dispatcher.close();
  }

  /** Project-scoped calls carry ?project= only when one was chosen, so the token's own project applies otherwise. */
  private scoped(call: ApiCall): ApiCall {
    return { ...call, query: { project: this.options.project, ...call.query } };
  }

  listProjects(): Promise<Project[]> {
    return apiRequest(this.transport, { method: 'GET', path: ROUTES.projects }, arrayOf(Project));
  }

  createProject(name: string): Promise<Project> {
    const body = checkBody(ProjectCreate, { name }, 'project');
    return apiRequest(this.transport, { method: 'POST', path: ROUTES.projects, body }, Project);
  }

  listPools(): Promise<Pool[]> {
    return apiRequest(this.transport, this.scoped({ method: 'GET', path: ROUTES.pools }), arrayOf(Pool));
  }

  createPool(input: PoolCreateInput): Promise<Pool> {
    const body = checkBody(PoolCreate, input, 'pool');
    return apiRequest(this.transport, this.scoped({ method: 'POST', path: ROUTES.pools, body }), Pool);
  }

  getPool(name: string): Promise<Pool> {
    return apiRequest(this.transport, this.scoped({ method: 'GET', path: ROUTES.pool(name) }), Pool);
  }

  /** A hosted pool's spec, members by state, warm hits and misses, recent reconcile actions. */
  getHostedPool(name: string): Promise<HostedPoolStatus> {
    return apiRequest(this.transport, this.scoped({ method: 'GET', path: ROUTES.poolHosted(name) }), HostedPoolStatus);
  }

  /** Changes a hosted pool's spec (a reconcile pass follows at once). */
  updateHostedPool(name: string, change: HostedPoolUpdate): Promise<HostedPoolStatus> {
    const body = checkBody(HostedPoolUpdate, change, 'hosted pool update');
    return apiRequest(this.transport, this.scoped({ method: 'POST', path: ROUTES.poolHosted(name), body }), HostedPoolStatus);
  }

  /** Runs a reconcile pass of a hosted pool now and answers its state after. */
  reconcilePool(name: string): Promise<HostedPoolStatus> {
    return apiRequest(this.transport, this.scoped({ method: 'POST', path: ROUTES.poolReconcile(name) }), HostedPoolStatus);
  }

  deletePool(name: string): Promise<void> {
    return apiRequest(this.transport, this.scoped({ method: 'DELETE', path: ROUTES.pool(name) }), null);
  }

  /** Every pool's stats (the project's pools, as listPools orders them), in one request. */
  listPoolStats(): Promise<PoolStats[]> {
    return apiRequest(this.transport, this.scoped({ method: 'GET', path: ROUTES.stats }), PoolStats.array());
  }

  /** The pool's jobs by state, throughput, queue wait and run time percentiles, runners by status. */
  getPoolStats(name: string): Promise<PoolStats> {
    return apiRequest(this.transport, this.scoped({ method: 'GET', path: ROUTES.poolStats(name) }), PoolStats);
  }

  /** Drains a pool (every runner DRAINING, status draining): its queued jobs wait, running ones finish. */
  drainPool(name: string): Promise<Pool> {
    return apiRequest(this.transport, this.scoped({ method: 'POST', path: ROUTES.poolDrain(name) }), Pool);
  }

  /** Pauses a pool: jobs queue, none starts; running ones finish. */
  pausePool(name: string): Promise<Pool> {
    return apiRequest(this.transport, this.scoped({ method: 'POST', path: ROUTES.poolPause(name) }), Pool);
  }

  /** Makes a paused or draining pool active again; its queued jobs start. */
  resumePool(name: string): Promise<Pool> {
    return apiRequest(this.transport, this.scoped({ method: 'POST', path: ROUTES.poolResume(name) }), Pool);
  }

  /** Mints a registration token for a pool; the answer is the only place its secret appears. */
  mintRegistrationToken(pool: string, input: RegistrationTokenCreateInput = {}): Promise<RegistrationToken> {
    const body = checkBody(RegistrationTokenCreate, input, 'registration token request');
    return apiRequest(this.transport, this.scoped({ method: 'POST', path: ROUTES.poolTokens(pool), body }), RegistrationToken);
  }

  listRunners(filter: { pool?: string } = {}): Promise<Runner[]> {
    const call: ApiCall = { method: 'GET', path: ROUTES.runners, query: { pool: filter.pool } };
    return apiRequest(this.transport, this.scoped(call), arrayOf(Runner));
  }

  getRunner(id: string): Promise<Runner> {
    return apiRequest(this.transport, this.scoped({ method: 'GET', path: ROUTES.runner(id) }), Runner);
  }

  /** Revokes a runner: the coordinator deletes it and answers with the runner as last seen. */
  revokeRunner(id: string): Promise<Runner> {
    return apiRequest(this.transport, this.scoped({ method: 'POST', path: ROUTES.runnerRevoke(id) }), Runner);
  }

  /** Drains a runner (DRAINING, kept across its reconnects): no new jobs, running ones finish. */
  drainRunner(id: string): Promise<Runner> {
    return apiRequest(this.transport, this.scoped({ method: 'POST', path: ROUTES.runnerDrain(id) }), Runner);
  }

  /** Lifts an operator's drain; the runner stays DRAINING while it drains itself or its pool drains. */
  resumeRunner(id: string): Promise<Runner> {
    return apiRequest(this.transport, this.scoped({ method: 'POST', path: ROUTES.runnerResume(id) }), Runner);
  }

  listAudit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    const call: ApiCall = { method: 'GET', path: ROUTES.audit, query: { resourceType: query.resourceType, limit: query.limit } };
    return apiRequest(this.transport, this.scoped(call), arrayOf(AuditEntry));
  }

  /** Creates an API token in the selected project; the answer is the only place its secret appears. */
  createApiToken(input: ApiTokenCreate): Promise<ApiToken> {
    const body = checkBody(ApiTokenCreate, input, 'API token request');
    return apiRequest(this.transport, this.scoped({ method: 'POST', path: ROUTES.apiTokens, body }), ApiToken);
  }

  /** The project's API tokens that are not revoked (expired ones too), never with a secret. */
  listApiTokens(): Promise<ApiToken[]> {
    return apiRequest(this.transport, this.scoped({ method: 'GET', path: ROUTES.apiTokens }), arrayOf(ApiToken));
  }

  /** Revokes an API token: its requests get 401 token_revoked and its open job sockets are closed (4401). */
  revokeApiToken(id: string): Promise<ApiToken> {
    return apiRequest(this.transport, this.scoped({ method: 'DELETE', path: ROUTES.apiToken(id) }), ApiToken);
  }

  /**
   * Submits a job; `created` is false when the idempotency key named an existing job (HTTP 200, not 201).
   * The key with a different spec is refused: RbtkError idempotency_conflict (409), details.jobId naming that job.
   */
  async submitJob(input: JobSpecInput): Promise<{ job: Job; created: boolean }> {
    const body = checkBody(JobSpec, input, 'job');
    const { status, data } = await apiExchange(this.transport, this.scoped({ method: 'POST', path: ROUTES.jobs, body }), Job);
    return { job: data, created: status === 201 };
  }

  /** Jobs, newest first. */
  listJobs(query: JobQuery = {}): Promise<Job[]> {
    const call: ApiCall = { method: 'GET', path: ROUTES.jobs, query: { pool: query.pool, state: query.state, limit: query.limit } };
    return apiRequest(this.transport, this.scoped(call), arrayOf(Job));
  }

  getJob(id: string): Promise<Job> {
    return apiRequest(this.transport, this.scoped({ method: 'GET', path: ROUTES.job(id) }), Job);
  }

  /**
   * The log of `attempt` (default: the current one) from byte `offset`;
   * possibly only a part of it: read on from the end of the last chunk.
   */
  getJobLogs(id: string, offset = 0, attempt?: number): Promise<LogChunk[]> {
    const call: ApiCall = { method: 'GET', path: ROUTES.jobLogs(id), query: { offset, ...(attempt !== undefined ? { attempt } : {}) } };
    return apiRequest(this.transport, this.scoped(call), arrayOf(LogChunk));
  }

  /** Cancels a job: queued ones at once, running ones when their runner has stopped them. */
  cancelJob(id: string): Promise<Job> {
    return apiRequest(this.transport, this.scoped({ method: 'POST', path: ROUTES.jobCancel(id) }), Job);
  }
}
