// Three functions, not the index: semver/index.js loads all ~45 of its modules, which rbtk-runner would carry idle.
import gt from 'semver/functions/gt.js';
import lt from 'semver/functions/lt.js';
import valid from 'semver/functions/valid.js';
import { z } from 'zod';

/*
 * rbtk-runner versions, compared as semantic versions (1.2.3, 1.3.0-rc.1), so
 * that "the agent on disk is newer" and "the coordinator asks for at least X"
 * mean the same on both sides.
 */

/** A version an operator writes (--min-runner-version): a full semantic version. */
export const AgentVersion = z
  .string()
  .max(64)
  .refine((v) => valid(v) !== null, 'a semantic version such as 1.4.0');

/** True when `candidate` is a later version than `current`; false when either is not a version. */
export function isNewerVersion(candidate: string, current: string): boolean {
  return valid(candidate) !== null && valid(current) !== null && gt(candidate, current);
}

/** True when `version` is below `minimum`; a version that cannot be read counts as below. */
export function isBelowVersion(version: string, minimum: string): boolean {
  if (valid(minimum) === null) return false;
  return valid(version) === null || lt(version, minimum);
}
