import type { CoordinatorMessage, ExecutorName, Gpu, JobRequirements, Labels, RunnerStatus } from '@rbtk/protocol';
import type { JobRecord } from '../store/job-rows.js';

/** A job's slot on a runner, and the GPUs it holds there. */
export interface Reservation {
  /**
   * The attempt it is for. A dispatch's reservation (reserve) starts with the
   * attempt after the one it read from the queue: the least its commit can
   * make (attempts only grow); assigned() records the one committed.
   */
  attempt: number;
  gpus: readonly string[];
}

/** A connected runner as the dispatcher sees it. */
export interface IndexedRunner {
  id: string;
  poolId: number;
  status: RunnerStatus;
  executors: ReadonlySet<ExecutorName>;
  labels: Labels;
  airgapped: boolean;
  maxJobs: number;
  /** GPUs Docker on the host can hand out (none when it cannot). */
  gpus: Gpu[];
  /** Attempts assigned to or running on it (or reserved for a commit to come), by job id. */
  inFlight: Map<string, Reservation>;
  /**
   * Attempts taken from it that it was told to stop ("jobId:attempt" -> GPU
   * uuids): until it reports each ended (its result, or a reject), the
   * attempt still holds a slot and its GPUs there.
   */
  stopping: Map<string, readonly string[]>;
  /** It refused a job for now (no free slot, its disk...): offered nothing until this (performance.now()); 0: not resting. */
  restingUntil: number;
  /** Passing refusals in a row, since it last took an attempt: each doubles the rest. */
  refusals: number;
  /** A hosted pool's member being torn down (or done with its one job): it takes no job, ever again (RunnerIndex.retire). */
  retired?: boolean;
  /** The session that added it: a closing old session must not remove a newer one's entry. */
  owner: object;
  send(message: CoordinatorMessage): void;
}

/** Whether `have` holds every label of `want` (a loop, not Object.entries: it runs for each runner a pick looks at). */
function hasLabels(have: Labels, want: Labels): boolean {
  for (const k in want) if (have[k] !== want[k]) return false;
  return true;
}

type GpuPredicates = Pick<JobRequirements, 'gpuModel' | 'gpuMemoryMiB'>;

/** Whether the GPU meets the job's model (name substring, any case) and per-GPU memory predicates. */
function gpuMatches(g: Gpu, req: GpuPredicates): boolean {
  return (req.gpuModel === undefined || g.name.toLowerCase().includes(req.gpuModel.toLowerCase())) && g.memoryMiB >= (req.gpuMemoryMiB ?? 0);
}

/** How many of the GPUs meet the job's model and per-GPU memory predicates. */
export function matchingGpus(gpus: readonly Gpu[], req: GpuPredicates): number {
  let n = 0;
  for (const g of gpus) if (gpuMatches(g, req)) n++;
  return n;
}

/** The runner's GPUs that no attempt holds (nor one being stopped) and that meet the predicates, in nvidia-smi's order. */
function freeGpus(r: IndexedRunner, req: GpuPredicates): Gpu[] {
  const held = new Set<string>();
  for (const { gpus } of r.inFlight.values()) for (const u of gpus) held.add(u);
  for (const uuids of r.stopping.values()) for (const u of uuids) held.add(u);
  return r.gpus.filter((g) => !held.has(g.uuid) && gpuMatches(g, req));
}

/** Slots in use on the runner: its attempts, and those it is stopping. */
export const busySlots = (r: IndexedRunner): number => r.inFlight.size + r.stopping.size;

/**
 * Whether the reservation is the one an attempt leaving its runner frees: for
 * that attempt or an earlier one. A later attempt's stays: a change committed
 * on a runner's older session may run its effects (after its fsync) only once
 * a hello rebuilt the entry and a dispatch reserved the job again there. One
 * not yet assigned() holds the least attempt its commit can make, so it is
 * found for the attempt that commit made, whichever that was.
 */
const heldFor = (held: Reservation | undefined, attempt: number): held is Reservation => held !== undefined && held.attempt <= attempt;

export const stoppingKey = (jobId: string, attempt: number): string => `${jobId}:${attempt}`;

/** The rest after a runner's first passing refusal in a row, and the longest (see RunnerIndex.rest). */
export const REFUSAL_REST_MS = 1_000;
export const MAX_REFUSAL_REST_MS = 60_000;

/** Whether the runner is offered work at all: ONLINE, not retired, not resting after a refusal (the clock read only then). */
const open = (r: IndexedRunner): boolean =>
  r.status === 'ONLINE' && !r.retired && (r.restingUntil === 0 || r.restingUntil <= performance.now());

/** Whether the runner could ever run the job, ignoring how busy it is now. */
export function runnerFits(
  r: { executors: ReadonlySet<ExecutorName>; labels: Labels; airgapped: boolean; gpus: readonly Gpu[] },
  job: Pick<JobRecord, 'spec'>,
): boolean {
  const req = job.spec.requires;
  const gpus = req.gpus ?? 0;
  return (
    r.executors.has(job.spec.executor.type) &&
    hasLabels(r.labels, req.labels) &&
    (req.airgapped !== true || r.airgapped) &&
    (gpus === 0 || gpus <= matchingGpus(r.gpus, req))
  );
}

/**
 * Whether the runner takes the job now, with `busy` of its slots in use: it
 * is ONLINE and not retired, has a free slot and enough free GPUs that meet
 * the job's predicates, fits the job, and never rejected it.
 */
function takes(r: IndexedRunner, job: Pick<JobRecord, 'spec' | 'excluded'>, busy: number): boolean {
  if (!open(r) || busy >= r.maxJobs || !runnerFits(r, job) || job.excluded.includes(r.id)) return false;
  const req = job.spec.requires;
  const gpus = req.gpus ?? 0;
  return gpus === 0 || freeGpus(r, req).length >= gpus;
}

/**
 * A pool's runners, and the open ones filed by their free slots: byFree[f]
 * holds those with exactly f free, in the order they came to f. A pick reads
 * the fullest-free bucket first and takes the first runner there that fits,
 * so a job goes to the runner with most free slots, and among those to the
 * one that has waited longest, without looking at every runner of the pool:
 * in a pool of thousands, nearly always the first one it reads.
 */
interface PoolRunners {
  all: Set<IndexedRunner>;
  byFree: Set<IndexedRunner>[];
  /** Free slots on its open runners (the sum over byFree). */
  free: number;
}

/**
 * The connected runners of this coordinator, by pool, with their free slots:
 * the dispatcher picks from memory and touches the database only to commit.
 * Entries are added at hello (with the runner's in-flight jobs read from the
 * database), so after a restart the index fills as runners come back.
 *
 * Whatever changes a runner's free slots (its attempts, its status, a rest)
 * goes through the index, which files the runner again (refile).
 */
export class RunnerIndex {
  private readonly byId = new Map<string, IndexedRunner>();
  private readonly byPool = new Map<number, PoolRunners>();
  /** The free slots each filed runner is filed under (absent: not filed, none free or not open). */
  private readonly filed = new Map<IndexedRunner, number>();

  add(runner: IndexedRunner): void {
    this.remove(runner.id);
    this.byId.set(runner.id, runner);
    let pool = this.byPool.get(runner.poolId);
    if (!pool) {
      pool = { all: new Set(), byFree: [], free: 0 };
      this.byPool.set(runner.poolId, pool);
    }
    pool.all.add(runner);
    this.refile(runner);
  }

  /** Removes the runner (only if `owner` added it, when given). */
  remove(id: string, owner?: object): IndexedRunner | undefined {
    const runner = this.byId.get(id);
    if (!runner || (owner !== undefined && runner.owner !== owner)) return undefined;
    this.byId.delete(id);
    const pool = this.byPool.get(runner.poolId);
    if (pool) {
      this.unfile(pool, runner);
      pool.all.delete(runner);
      if (pool.all.size === 0) this.byPool.delete(runner.poolId);
    }
    return runner;
  }

  get(id: string): IndexedRunner | undefined {
    return this.byId.get(id);
  }

  /** An operator's drain or resume, or liveness's OFFLINE mark: only ONLINE runners are offered work. */
  setStatus(runner: IndexedRunner, status: RunnerStatus): void {
    runner.status = status;
    this.refile(runner);
  }

  /** A hosted member going away: it takes no job from now on. */
  retire(runner: IndexedRunner): void {
    runner.retired = true;
    this.refile(runner);
  }

  /** Slots free on the pool's ONLINE runners. */
  freeSlots(poolId: number): number {
    return this.byPool.get(poolId)?.free ?? 0;
  }

  /** Best runner for the job: ONLINE, free slot (and GPUs), fits; most free slots, then the longest filed there. */
  pick(poolId: number, job: Pick<JobRecord, 'spec' | 'excluded'>): IndexedRunner | undefined {
    const pool = this.byPool.get(poolId);
    if (!pool) return undefined;
    for (let free = pool.byFree.length - 1; free > 0; free--) {
      for (const r of pool.byFree[free] ?? []) if (takes(r, job, busySlots(r))) return r;
    }
    return undefined;
  }

  /** Files the runner under its free slots now (or takes it out, when it has none or is not open). */
  private refile(runner: IndexedRunner): void {
    const pool = this.byPool.get(runner.poolId);
    if (!pool || this.byId.get(runner.id) !== runner) return;
    const free = open(runner) ? Math.max(0, runner.maxJobs - busySlots(runner)) : 0;
    if (this.filed.get(runner) === free) return;
    this.unfile(pool, runner);
    if (free === 0) return;
    let bucket = pool.byFree[free];
    if (!bucket) {
      for (let f = pool.byFree.length; f <= free; f++) pool.byFree[f] = new Set();
      bucket = pool.byFree[free]!;
    }
    bucket.add(runner);
    pool.free += free;
    this.filed.set(runner, free);
  }

  private unfile(pool: PoolRunners, runner: IndexedRunner): void {
    const was = this.filed.get(runner);
    if (was === undefined) return;
    pool.byFree[was]?.delete(runner);
    pool.free -= was;
    this.filed.delete(runner);
  }

  /**
   * Whether the runner, once `freeing` (which it holds) has left it, has a
   * slot and the GPUs for the job, fits it, and is taking work.
   */
  fitsOnceFreed(r: IndexedRunner, job: Pick<JobRecord, 'id' | 'spec' | 'excluded'>, freeing: string): boolean {
    return r.inFlight.has(freeing) && !r.inFlight.has(job.id) && takes(r, job, busySlots(r) - 1);
  }

  /**
   * Takes a slot on the runner for the job, and its GPUs: the first free ones
   * that meet its predicates (pick() made sure there are enough). The assign
   * names them, so the runner's containers get disjoint sets.
   *
   * False, and nothing taken, when the runner already holds the job: a
   * dispatch pass and a handoff may both read it from the queue before either
   * commits, and only the one that reserved it may give the slot back
   * (unreserve).
   */
  reserve(runner: IndexedRunner, job: Pick<JobRecord, 'id' | 'spec' | 'attempt'>): boolean {
    if (runner.inFlight.has(job.id)) return false;
    const req = job.spec.requires;
    const gpus = req.gpus ? freeGpus(runner, req).slice(0, req.gpus).map((g) => g.uuid) : [];
    runner.inFlight.set(job.id, { attempt: job.attempt + 1, gpus });
    this.refile(runner);
    return true;
  }

  /** The reservation's commit assigned the job to the runner as `attempt`. */
  assigned(runner: IndexedRunner, jobId: string, attempt: number): void {
    const held = runner.inFlight.get(jobId);
    if (held) held.attempt = attempt;
  }

  /** The GPU uuids the job holds on the runner (none for a job without GPUs). */
  gpusOf(runner: IndexedRunner, jobId: string): readonly string[] {
    return runner.inFlight.get(jobId)?.gpus ?? [];
  }

  /**
   * A reservation whose commit assigned nothing (it failed, or the job moved
   * on) is given back, on the entry it was made on: that entry holds no other
   * reservation of the job, but a newer session's entry may hold one.
   */
  unreserve(runner: IndexedRunner, jobId: string): void {
    if (runner.inFlight.delete(jobId)) this.refile(runner);
  }

  /** The job's attempt left the runner: frees its slot and GPUs there (see heldFor); true when it held them. */
  release(runnerId: string, jobId: string, attempt: number): boolean {
    const runner = this.byId.get(runnerId);
    if (runner === undefined || !heldFor(runner.inFlight.get(jobId), attempt)) return false;
    runner.inFlight.delete(jobId);
    this.refile(runner);
    return true;
  }

  /**
   * The job left the runner, which is told to stop `attempt`: its slot and
   * GPUs stay taken until the runner reports the attempt ended (ended()).
   * Offering them at once would have the runner refuse for want of a slot,
   * or two containers share a GPU.
   */
  releaseStopping(runnerId: string, jobId: string, attempt: number): void {
    const runner = this.byId.get(runnerId);
    const held = runner?.inFlight.get(jobId);
    if (!runner || !heldFor(held, attempt)) return;
    runner.inFlight.delete(jobId);
    runner.stopping.set(stoppingKey(jobId, attempt), held.gpus);
    this.refile(runner); // the same slot, unless that attempt was being stopped already
  }

  /** The runner reports the attempt ended; true when that freed a slot held by an attempt being stopped. */
  ended(runnerId: string, jobId: string, attempt: number): boolean {
    const runner = this.byId.get(runnerId);
    if (!runner?.stopping.delete(stoppingKey(jobId, attempt))) return false;
    this.refile(runner);
    return true;
  }

  /**
   * The runner refused a job for now: it is offered nothing for a while, 1 s
   * after the first refusal in a row, doubling to at most a minute, so a
   * refusal that lasts (a full disk) costs a few commits a minute rather than
   * a loop of offers. `wake` runs when it may take work again.
   */
  rest(runnerId: string, wake: () => void): void {
    const runner = this.byId.get(runnerId);
    if (!runner) return;
    // Already resting: the other refusals of the same offer (a pass fills every free slot) are one refusal.
    if (runner.restingUntil !== 0 && runner.restingUntil > performance.now()) return;
    runner.refusals++;
    const restMs = Math.min(MAX_REFUSAL_REST_MS, REFUSAL_REST_MS * 2 ** (runner.refusals - 1));
    const until = performance.now() + restMs;
    runner.restingUntil = until;
    this.refile(runner);
    setTimeout(() => {
      if (runner.restingUntil === until) runner.restingUntil = 0;
      this.refile(runner);
      wake();
    }, restMs).unref();
  }

  /** The runner took the job's attempt: its next refusal rests it the shortest time again (a stale attempt's late accept counts not). */
  took(runnerId: string, jobId: string, attempt: number): void {
    const runner = this.byId.get(runnerId);
    if (runner?.inFlight.get(jobId)?.attempt === attempt) runner.refusals = 0;
  }
}
