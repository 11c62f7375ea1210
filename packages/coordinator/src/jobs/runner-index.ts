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
  lastAssignedAt: number;
  /** A hosted pool's member being torn down (or done with its one job): it takes no job, ever again. */
  retired?: boolean;
  /** The session that added it: a closing old session must not remove a newer one's entry. */
  owner: object;
  send(message: CoordinatorMessage): void;
}

const hasLabels = (have: Labels, want: Labels): boolean => Object.entries(want).every(([k, v]) => have[k] === v);

type GpuPredicates = Pick<JobRequirements, 'gpuModel' | 'gpuMemoryMiB'>;

/** Whether the GPU meets the job's model (name substring, any case) and per-GPU memory predicates. */
function gpuMatches(g: Gpu, req: GpuPredicates): boolean {
  return (req.gpuModel === undefined || g.name.toLowerCase().includes(req.gpuModel.toLowerCase())) && g.memoryMiB >= (req.gpuMemoryMiB ?? 0);
}

/** How many of the GPUs meet the job's model and per-GPU memory predicates. */
export function matchingGpus(gpus: readonly Gpu[], req: GpuPredicates): number {
  return gpus.filter((g) => gpuMatches(g, req)).length;
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
  return (
    r.executors.has(job.spec.executor.type) &&
    hasLabels(r.labels, req.labels) &&
    (req.airgapped !== true || r.airgapped) &&
    (req.gpus ?? 0) <= matchingGpus(r.gpus, req)
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
 * The connected runners of this coordinator, by pool, with their free slots:
 * the dispatcher picks from memory and touches the database only to commit.
 * Entries are added at hello (with the runner's in-flight jobs read from the
 * database), so after a restart the index fills as runners come back.
 */
export class RunnerIndex {
  private readonly byId = new Map<string, IndexedRunner>();
  private readonly byPool = new Map<number, Set<IndexedRunner>>();

  add(runner: IndexedRunner): void {
    this.remove(runner.id);
    this.byId.set(runner.id, runner);
    let pool = this.byPool.get(runner.poolId);
    if (!pool) {
      pool = new Set();
      this.byPool.set(runner.poolId, pool);
    }
    pool.add(runner);
  }

  /** Removes the runner (only if `owner` added it, when given). */
  remove(id: string, owner?: object): IndexedRunner | undefined {
    const runner = this.byId.get(id);
    if (!runner || (owner !== undefined && runner.owner !== owner)) return undefined;
    this.byId.delete(id);
    const pool = this.byPool.get(runner.poolId);
    pool?.delete(runner);
    if (pool?.size === 0) this.byPool.delete(runner.poolId);
    return runner;
  }

  get(id: string): IndexedRunner | undefined {
    return this.byId.get(id);
  }

  /** Slots free on the pool's ONLINE runners. */
  freeSlots(poolId: number): number {
    let free = 0;
    for (const r of this.byPool.get(poolId) ?? []) {
      if (open(r)) free += Math.max(0, r.maxJobs - busySlots(r));
    }
    return free;
  }

  /** Best runner for the job: ONLINE, free slot (and GPUs), fits; most free slots, then least recently assigned. */
  pick(poolId: number, job: Pick<JobRecord, 'spec' | 'excluded'>): IndexedRunner | undefined {
    let best: IndexedRunner | undefined;
    let bestFree = 0;
    for (const r of this.byPool.get(poolId) ?? []) {
      const busy = busySlots(r);
      if (!takes(r, job, busy)) continue;
      const free = r.maxJobs - busy;
      if (!best || free > bestFree || (free === bestFree && r.lastAssignedAt < best.lastAssignedAt)) {
        best = r;
        bestFree = free;
      }
    }
    return best;
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
  reserve(runner: IndexedRunner, job: Pick<JobRecord, 'id' | 'spec' | 'attempt'>, now: number): boolean {
    if (runner.inFlight.has(job.id)) return false;
    const req = job.spec.requires;
    const gpus = req.gpus ? freeGpus(runner, req).slice(0, req.gpus).map((g) => g.uuid) : [];
    runner.inFlight.set(job.id, { attempt: job.attempt + 1, gpus });
    runner.lastAssignedAt = now;
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
    runner.inFlight.delete(jobId);
  }

  /** The job's attempt left the runner: frees its slot and GPUs there (see heldFor); true when it held them. */
  release(runnerId: string, jobId: string, attempt: number): boolean {
    const runner = this.byId.get(runnerId);
    return runner !== undefined && heldFor(runner.inFlight.get(jobId), attempt) && runner.inFlight.delete(jobId);
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
  }

  /** The runner reports the attempt ended; true when that freed a slot held by an attempt being stopped. */
  ended(runnerId: string, jobId: string, attempt: number): boolean {
    return this.byId.get(runnerId)?.stopping.delete(stoppingKey(jobId, attempt)) ?? false;
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
    setTimeout(() => {
      if (runner.restingUntil === until) runner.restingUntil = 0;
      wake();
    }, restMs).unref();
  }

  /** The runner took the job's attempt: its next refusal rests it the shortest time again (a stale attempt's late accept counts not). */
  took(runnerId: string, jobId: string, attempt: number): void {
    const runner = this.byId.get(runnerId);
    if (runner?.inFlight.get(jobId)?.attempt === attempt) runner.refusals = 0;
  }
}
