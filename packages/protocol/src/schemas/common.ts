import { z } from 'zod';
import { isDuration, parseDuration } from '../duration.js';
import { formatMemory, MAX_MEMORY_BYTES, MIN_MEMORY_BYTES, parseMemory } from '../memory.js';

/** Names of projects and pools: what a person types on a command line. */
export const Name = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'use 1-63 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit');

/** Runner names: hostnames, so a little more permissive than pool names. */
export const RunnerName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'use 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit');

export const LabelKey = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/, 'label keys are 1-63 letters, digits, ".", "_", "/" or "-"');

/** Tags on pools and labels on runners: `env=prod`, `gpu=a100`. */
export const Labels = z
  .record(LabelKey, z.string().max(255))
  .refine((r) => Object.keys(r).length <= 64, 'at most 64 labels');
export type Labels = z.infer<typeof Labels>;

export const Duration = z.string().refine(isDuration, 'a duration such as 500ms, 2s, 15m or 24h');

/** The longest anything may be given (a timeout, a token's life): ten years, a deadline any date holds. */
export const MAX_DURATION_MS = 3650 * 86_400_000;

/** A duration longer than 0s and at most ten years: job timeouts, token lifetimes, hosted pools' waits. */
export const PositiveDuration = Duration.superRefine((text, ctx) => {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch {
    return; // zod runs every refinement: text that is no duration is Duration's to report
  }
  if (ms <= 0) ctx.addIssue({ code: 'custom', message: 'must be longer than 0s' });
  else if (ms > MAX_DURATION_MS) ctx.addIssue({ code: 'custom', message: 'at most 3650d (ten years)' });
});

/**
 * A container memory limit: `512m`, `2g` (binary units, as Docker's `--memory`) or a number of
 * bytes; kept as given, parsed where it is used (parseMemory). At least Docker's minimum, 6m.
 */
export const MemoryLimit = z.union([z.string(), z.number()]).superRefine((value, ctx) => {
  let bytes: number;
  try {
    bytes = parseMemory(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return;
  }
  if (bytes < MIN_MEMORY_BYTES) ctx.addIssue({ code: 'custom', message: `at least 6m (Docker's smallest memory limit); got ${formatMemory(bytes)}` });
  else if (bytes > MAX_MEMORY_BYTES) ctx.addIssue({ code: 'custom', message: 'at most 1p' });
});

/** ISO-8601 timestamps on the wire. */
export const Timestamp = z.string();

export const Id = z.string().min(1).max(64);
