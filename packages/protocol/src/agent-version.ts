import { z } from 'zod';

/*
 * rbtk-runner versions, compared as semantic versions (1.2.3, 1.3.0-rc.1), so
 * that "the agent on disk is newer" and "the coordinator asks for at least X"
 * mean the same on both sides.
 *
 * Our own reading of SemVer 2.0.0 (https://semver.org, section 11) rather than
 * the semver package: these two comparisons are all rbtk needs, and the
 * package's regex tables were half a megabyte of every idle runner's heap.
 */

/** major.minor.patch[-prerelease][+build], with an optional leading "v" as `semver.valid` takes it. */
const SEMVER =
  /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?$/;

/** The parts that order versions; build metadata does not (section 10). */
interface Parsed {
  core: [number, number, number];
  pre: string[];
}

function parse(version: string): Parsed | null {
  if (version.length > 64) return null;
  const m = SEMVER.exec(version);
  if (!m) return null;
  const core: [number, number, number] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (!core.every(Number.isSafeInteger)) return null;
  return { core, pre: m[4] === undefined ? [] : m[4].split('.') };
}

const NUMERIC = /^\d+$/;

/** One prerelease identifier against another: numeric ones numerically and below alphanumeric ones, the rest in ASCII order. */
function compareIdentifier(a: string, b: string): number {
  const an = NUMERIC.test(a);
  const bn = NUMERIC.test(b);
  if (an && bn) return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
  if (an !== bn) return an ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Negative, zero or positive as `a` is below, equal to or above `b` in precedence. */
function compare(a: Parsed, b: Parsed): number {
  for (let i = 0; i < 3; i++) if (a.core[i] !== b.core[i]) return a.core[i]! - b.core[i]!;
  // A version with a prerelease is below the same version without one.
  if (a.pre.length === 0 || b.pre.length === 0) return b.pre.length - a.pre.length;
  for (let i = 0; i < Math.min(a.pre.length, b.pre.length); i++) {
    const c = compareIdentifier(a.pre[i]!, b.pre[i]!);
    if (c !== 0) return c;
  }
  return a.pre.length - b.pre.length;
}

/** True when `version` is a semantic version. */
export function isSemanticVersion(version: string): boolean {
  return parse(version) !== null;
}

/** A version an operator writes (--min-runner-version): a full semantic version. */
export const AgentVersion = z.string().max(64).refine(isSemanticVersion, 'a semantic version such as 1.4.0');

/** True when `candidate` is a later version than `current`; false when either is not a version. */
export function isNewerVersion(candidate: string, current: string): boolean {
  const a = parse(candidate);
  const b = parse(current);
  return a !== null && b !== null && compare(a, b) > 0;
}

/** True when `version` is below `minimum`; a version that cannot be read counts as below. */
export function isBelowVersion(version: string, minimum: string): boolean {
  const min = parse(minimum);
  if (min === null) return false;
  const v = parse(version);
  return v === null || compare(v, min) < 0;
}
