import { ErrorCode, type ExecutorName, type Gpu, type JobSpec, type Labels, RbtkError } from '@rbtk/protocol';
import type { PoolRecord, RunnerRecord } from '../store/rows.js';
import type { Store } from '../store/store.js';
import { matchingGpus, runnerFits } from './runner-index.js';

const pairs = (labels: Labels): string =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

/**
 * The GPUs a runner can hand to containers, from its hello: none when Docker
 * on the host cannot serve them (no NVIDIA container toolkit).
 */
export function usableGpus(r: Pick<RunnerRecord, 'capabilities'>): Gpu[] {
  const inventory = r.capabilities?.gpus;
  return inventory?.usable ? inventory.gpus : [];
}

/** Executors a registered runner offers; null until its first hello says. */
function executorsOf(r: RunnerRecord): ReadonlySet<ExecutorName> | null {
  return r.capabilities ? new Set(r.capabilities.executors) : null;
}

/**
 * What routing reads on every submit, kept between submits: each project's
 * pools, and which (pool, requirements) have a runner that fits. Cleared
 * whenever pools or registered runners change (create/delete, register,
 * hello, revoke, reap), so a submit costs no query over the pool's runners.
 */
export class RoutingCache {
  private readonly pools = new Map<string, PoolRecord[]>();
  private readonly satisfiable = new Set<string>();

  async poolsOf(store: Store, project: string): Promise<PoolRecord[]> {
    let pools = this.pools.get(project);
    if (!pools) {
      pools = await store.pools.list(project);
      this.pools.set(project, pools);
    }
    return pools;
  }

  key(pool: PoolRecord, spec: JobSpec): string {
    return `${pool.id}\u0000${spec.executor.type}\u0000${JSON.stringify(spec.requires)}`;
  }

  knownSatisfiable(key: string): boolean {
    return this.satisfiable.has(key);
  }

  remember(key: string): void {
    this.satisfiable.add(key);
  }

  invalidate(): void {
    this.pools.clear();
    this.satisfiable.clear();
  }
}

/** The one pool a job lands on: by name, or the single pool whose tags contain the selector. */
async function choosePool(store: Store, cache: RoutingCache, project: string, spec: JobSpec): Promise<PoolRecord> {
  const pools = await cache.poolsOf(store, project);
  if (spec.pool !== undefined) {
    const pool = pools.find((p) => p.name === spec.pool);
    if (!pool) throw new RbtkError(ErrorCode.PoolNotFound, `pool "${spec.pool}" does not exist in project "${project}"`);
    return pool;
  }
  const selector = spec.selector ?? {};
  const matching = pools.filter((p) =>
    Object.entries(selector).every(([k, v]) => p.tags[k] === v),
  );
  if (matching.length === 0) {
    throw new RbtkError(ErrorCode.NoPoolMatches, `no pool in project "${project}" has tags ${pairs(selector)}`);
  }
  if (matching.length > 1) {
    const names = matching.map((p) => `"${p.name}"`).join(', ');
    throw new RbtkError(
      ErrorCode.AmbiguousSelector,
      `selector ${pairs(selector)} matches ${matching.length} pools in project "${project}" (${names}): a job lands on exactly one pool; name it with pool or narrow the selector`,
    );
  }
  return matching[0]!;
}

/**
 * Routes a job at submit: its pool, or a clear refusal when no runner of that
 * pool could ever take it. Requirements are checked against every runner
 * registered in the pool, whatever its status: a busy or offline runner may
 * come back, a missing capability will not.
 */
export async function routeJob(store: Store, cache: RoutingCache, project: string, spec: JobSpec): Promise<PoolRecord> {
  const pool = await choosePool(store, cache, project, spec);
  const unsatisfiable = (what: string) => new RbtkError(ErrorCode.Unsatisfiable, what);
  if (spec.requires.airgapped === true && !pool.airgapped) {
    throw unsatisfiable(`job requires an air-gapped pool, and pool "${pool.name}" is not air-gapped`);
  }
  if (pool.airgapped && spec.requires.airgapped !== true && !pool.allowNonAirgappedJobs) {
    throw unsatisfiable(
      `pool "${pool.name}" is air-gapped and takes only jobs that require it (requires.airgapped: true, rbtk job submit --airgapped); create the pool with --allow-non-airgapped-jobs to take others`,
    );
  }
  if (pool.airgapped && spec.executor.type === 'docker' && spec.executor.pull === 'always') {
    throw unsatisfiable(`pool "${pool.name}" is air-gapped: its runners never pull, so pull policy "always" cannot run there`);
  }
  if (pool.hostedSpec) {
    // Members are made from the spec, so none need exist yet; what they offer is the spec's.
    const offered = pool.hostedSpec.executors;
    if (!offered.includes(spec.executor.type)) {
      throw unsatisfiable(`members of hosted pool "${pool.name}" offer ${offered.join(', ')}, not the ${spec.executor.type} executor`);
    }
    return pool;
  }
  const key = cache.key(pool, spec);
  if (cache.knownSatisfiable(key)) return pool;
  const runners = await store.runners.list(project, pool.name);
  if (runners.length === 0) throw unsatisfiable(`pool "${pool.name}" has no registered runners`);

  const req = spec.requires;
  const gpus = req.gpus ?? 0;
  const checks: { ok: (r: RunnerRecord) => boolean; says: string }[] = [
    {
      ok: (r) => executorsOf(r)?.has(spec.executor.type) ?? true,
      says: `no runner in pool "${pool.name}" offers the ${spec.executor.type} executor`,
    },
    {
      ok: (r) => Object.entries(req.labels).every(([k, v]) => r.labels[k] === v),
      says: `no runner in pool "${pool.name}" has labels ${pairs(req.labels)}`,
    },
    { ok: (r) => req.airgapped !== true || r.airgapped, says: `no runner in pool "${pool.name}" is air-gapped` },
    { ok: (r) => usableGpus(r).length >= gpus, says: `no runner in pool "${pool.name}" has ${gpus} usable GPU(s)` },
    {
      ok: (r) => matchingGpus(usableGpus(r), req) >= gpus,
      says: `no runner in pool "${pool.name}" has ${gpus} GPU(s) matching ${[
        req.gpuModel && `model "${req.gpuModel}"`,
        req.gpuMemoryMiB && `at least ${req.gpuMemoryMiB} MiB each`,
      ]
        .filter(Boolean)
        .join(' with ')}`,
    },
  ];
  for (const check of checks) if (!runners.some(check.ok)) throw unsatisfiable(check.says);
  // Each predicate alone may hold on some runner and yet no runner hold them all.
  const fitsOne = runners.some((r) =>
    runnerFits(
      { executors: executorsOf(r) ?? new Set([spec.executor.type]), labels: r.labels, airgapped: r.airgapped, gpus: usableGpus(r) },
      { spec },
    ),
  );
  if (!fitsOne) throw unsatisfiable(`no single runner in pool "${pool.name}" meets all of the job's requirements`);
  cache.remember(key);
  return pool;
}
