import semver from 'semver';
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
  .refine((v) => semver.valid(v) !== null, 'a semantic version such as 1.4.0');

/** True when `candidate` is a later version than `current`; false when either is not a version. */
export function isNewerVersion(candidate: string, current: string): boolean {
  return semver.valid(candidate) !== null && semver.valid(current) !== null && semver.gt(candidate, current);
}

/** True when `version` is below `minimum`; a version that cannot be read counts as below. */
export function isBelowVersion(version: string, minimum: string): boolean {
  if (semver.valid(minimum) === null) return false;
  return semver.valid(version) === null || semver.lt(version, minimum);
}
