import { ErrorCode, JobSpec, RbtkError } from '@rbtk/protocol';
import type { JobRecord } from '../store/job-rows.js';

/**
 * JSON with every object's keys sorted and undefined members left out: two
 * values that are equal, whatever their key order, give the same text.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * Whether a submit's spec is the one stored for its idempotency key. Both are
 * compared as parsed (defaults filled in: a field left out equals its
 * default); the stored one is parsed again, so a default added since it was
 * stored does not count as a difference.
 */
export function sameSpec(stored: JobSpec, submitted: JobSpec): boolean {
  const reparsed = JobSpec.safeParse(stored);
  return canonicalJson(reparsed.success ? reparsed.data : stored) === canonicalJson(submitted);
}

/**
 * A submit that repeats an idempotency key gets the job the key named, when
 * its spec is the same; another spec under a used key is a client's mistake
 * (as with Stripe's Idempotency-Key), refused with 409 idempotency_conflict
 * rather than answered with a job that does not run what was asked.
 */
export function repeatOf(existing: JobRecord, spec: JobSpec): JobRecord {
  if (sameSpec(existing.spec, spec)) return existing;
  throw new RbtkError(
    ErrorCode.IdempotencyConflict,
    `idempotency key "${spec.idempotencyKey ?? ''}" was already used for job ${existing.id} with a different spec: ` +
      'submit that same spec to get the job back, or use a new key for a new job',
    409,
    { jobId: existing.id },
  );
}
