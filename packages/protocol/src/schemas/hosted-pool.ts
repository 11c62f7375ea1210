import { z } from 'zod';
import { Id, Labels, PositiveDuration, Timestamp } from './common.js';
import { ExecutorName } from './runner-config.js';

/*
 * Hosted (warm) pools: the coordinator provisions the members itself through
 * a provider and keeps `target` of them ready, so a job finds a runner already
 * up instead of paying a cold start.
 */

export const HostedProvider = z.enum(['process', 'docker']);
export type HostedProvider = z.infer<typeof HostedProvider>;

/** hot: ready members run; stopped: warmed members are stopped and started on claim. */
export const HostedMode = z.enum(['hot', 'stopped']);
export type HostedMode = z.infer<typeof HostedMode>;

/** What a job does when no member is ready: queue, cold-start an extra member (up to max), or be refused. */
export const HostedOnEmpty = z.enum(['wait', 'overflow', 'fail']);
export type HostedOnEmpty = z.infer<typeof HostedOnEmpty>;

/** After a job: ready puts a member that succeeded back (one that failed is replaced); terminate always replaces it. */
export const HostedReturn = z.enum(['ready', 'terminate']);
export type HostedReturn = z.infer<typeof HostedReturn>;

/** stopped: warmed, then frozen (SIGSTOP, docker pause) with its session closed; a claim starts it. */
export const MemberState = z.enum(['warming', 'ready', 'stopped', 'claimed', 'errored']);
export type MemberState = z.infer<typeof MemberState>;

const Count = z.number().int().min(0).max(1000);

const Weekday = z.enum(['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday']);
const ClockTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM (24 h)');

/**
 * One entry of a pool's schedule (RunsOn-style): while `match` holds (days,
 * a time range in a timezone; an entry without match always holds) the pool
 * keeps `hot` members ready and `stopped` members stopped. The first entry
 * that matches wins; none matching: the pool's own target.
 */
export const ScheduleEntry = z
  .object({
    name: z.string().min(1).max(100),
    match: z
      .object({
        day: z.array(Weekday).nonempty().optional(),
        /** [from, to), HH:MM; to before from crosses midnight. */
        time: z.tuple([ClockTime, ClockTime]).optional(),
        /** An IANA zone, e.g. Europe/Paris; UTC by default. */
        timezone: z
          .string()
          .refine((tz) => {
            try {
              new Intl.DateTimeFormat('en-US', { timeZone: tz });
              return true;
            } catch {
              return false;
            }
          }, 'unknown timezone')
          .default('UTC'),
      })
      .strict()
      .optional(),
    hot: Count.default(0),
    stopped: Count.default(0),
  })
  .strict();
export type ScheduleEntry = z.infer<typeof ScheduleEntry>;
export const HostedSchedule = z.array(ScheduleEntry).max(50);
export type HostedSchedule = z.infer<typeof HostedSchedule>;

/** The fields a create or an update may set; update takes any subset. */
const HostedPoolFields = z.object({
  provider: HostedProvider,
  /** The runner image (docker provider). */
  image: z.string().min(1).max(512).nullable(),
  target: Count,
  min: Count,
  /** Most members at once, claimed ones and overflow included. */
  max: Count,
  mode: HostedMode,
  onEmpty: HostedOnEmpty,
  /** A member not ready this long after it was created is recycled. */
  warmingTimeout: PositiveDuration,
  /** A ready member idle this long is recycled (fresh hosts, rotated credentials). */
  readyTtl: PositiveDuration,
  return: HostedReturn,
  /** Executors members offer; docker only where the provider's host has Docker. */
  executors: z.array(ExecutorName).nonempty(),
  /** Labels members' runners carry (jobs select them with requires.labels); a change recycles idle members. */
  labels: Labels,
  /** Size from recent claims (peak over 30 min × 1.25, within min..max) instead of the fixed target. */
  autoscale: z.boolean(),
  /** Entries overriding the target while they match; null: none. */
  schedule: HostedSchedule.nullable(),
});

const checkBounds = (s: { target: number; min: number; max: number; provider: HostedProvider; image: string | null }, ctx: z.RefinementCtx) => {
  if (s.provider === 'docker' && !s.image) ctx.addIssue({ code: 'custom', path: ['image'], message: 'the docker provider needs an image (--image)' });
  if (s.min > s.target) ctx.addIssue({ code: 'custom', path: ['min'], message: `min (${s.min}) is above target (${s.target})` });
  if (s.target > s.max) ctx.addIssue({ code: 'custom', path: ['max'], message: `target (${s.target}) is above max (${s.max})` });
};

/** A hosted pool's spec as stored and answered: every field set. */
export const HostedPoolSpec = HostedPoolFields.strict().superRefine(checkBounds);
export type HostedPoolSpec = z.infer<typeof HostedPoolSpec>;

/** What `POST /v1/pools` takes under `hosted`: provider and target, the rest defaulted (max: twice the target). */
export const HostedPoolCreate = z
  .object({
    provider: HostedProvider,
    image: z.string().min(1).max(512).nullable().default(null),
    target: Count,
    min: Count.default(0),
    max: Count.optional(),
    mode: HostedMode.default('hot'),
    onEmpty: HostedOnEmpty.default('wait'),
    warmingTimeout: PositiveDuration.default('10m'),
    readyTtl: PositiveDuration.default('10m'),
    return: HostedReturn.default('terminate'),
    executors: z.array(ExecutorName).nonempty().default(['shell']),
    labels: Labels.default({}),
    autoscale: z.boolean().default(false),
    schedule: HostedSchedule.nullable().default(null),
  })
  .strict()
  // Room for replacements while members are claimed: twice the target unless said otherwise.
  .transform((s) => ({ ...s, max: s.max ?? s.target * 2 }))
  .superRefine(checkBounds);
export type HostedPoolCreateInput = z.input<typeof HostedPoolCreate>;

/** `POST /v1/pools/:name/hosted`: the fields to change; the result must still hold min ≤ target ≤ max. */
export const HostedPoolUpdate = HostedPoolFields.partial().strict();
export type HostedPoolUpdate = z.infer<typeof HostedPoolUpdate>;

export const HostedMember = z.object({
  id: Id,
  state: MemberState,
  runnerId: z.string().nullable(),
  /** The job it runs (claimed), else null. */
  jobId: z.string().nullable(),
  /** Whether it was made from the pool's current spec. */
  current: z.boolean(),
  error: z.string().nullable(),
  createdAt: Timestamp,
  stateChangedAt: Timestamp,
});
export type HostedMember = z.infer<typeof HostedMember>;

/** One thing a reconcile pass did. */
export const ReconcileAction = z.object({
  at: Timestamp,
  action: z.enum(['create', 'remove', 'stop', 'start']),
  /** Why: target, overflow, errored, warming_timeout, ready_ttl, outdated, excess, drain, job_done, job_failed, claim, hot, leaked. */
  memberId: Id,
  reason: z.string(),
});
export type ReconcileAction = z.infer<typeof ReconcileAction>;

/** `GET /v1/pools/:name/hosted`: the spec, the members, and how claims went since the coordinator started. */
export const HostedPoolStatus = z.object({
  pool: z.string(),
  spec: HostedPoolSpec,
  /** What the last pass sized to: spec.target, autoscale's, or the matched schedule entry's hot + stopped. */
  target: z.number().int(),
  /** Of the target, how many run hot (the rest are stopped). */
  hot: z.number().int(),
  /** The schedule entry that matched at the last pass, or null. */
  schedule: z.string().nullable(),
  counts: z.record(MemberState, z.number().int()),
  members: z.array(HostedMember),
  /** Jobs that found a ready member at submit / that had to wait (or overflow) for one. */
  warmHits: z.number().int(),
  warmMisses: z.number().int(),
  recentActions: z.array(ReconcileAction),
  lastReconcileAt: Timestamp.nullable(),
});
export type HostedPoolStatus = z.infer<typeof HostedPoolStatus>;
