import { InvalidArgumentError } from 'commander';
import { LabelKey, Name, parseDuration, PositiveDuration, type Labels } from '@rbtk/protocol';

/**
 * Flag and argument parsers for commander. Each throws InvalidArgumentError, which
 * commander reports with the flag's name and rbtk turns into exit code 2 before any request.
 */

/** `--url`: an http(s) base URL. */
export function parseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('write it like http://127.0.0.1:7420');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError('use an http:// or https:// URL');
  return value;
}

/** Project and pool names, checked with the protocol's own rule. */
export function parseName(value: string): string {
  const r = Name.safeParse(value);
  if (!r.success) throw new InvalidArgumentError(r.error.issues[0]?.message ?? 'invalid name');
  return value;
}

/** A repeatable `key=value` flag (`--tag`, `--label`): accumulates into one Labels record. */
function parsePair(what: 'tag' | 'label', example: string, value: string, previous: Labels): Labels {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`write ${what}s as key=value, e.g. --${what} ${example}`);
  const key = value.slice(0, eq);
  const pairValue = value.slice(eq + 1);
  const r = LabelKey.safeParse(key);
  if (!r.success) throw new InvalidArgumentError(r.error.issues[0]?.message ?? `invalid ${what} key`);
  if (pairValue.length > 255) throw new InvalidArgumentError(`${what} values are at most 255 characters`);
  if (Object.hasOwn(previous, key)) throw new InvalidArgumentError(`${what} "${key}" given twice`);
  return { ...previous, [key]: pairValue };
}

/** `--tag k=v`, repeatable: accumulates into one Labels record. */
export function parseTag(value: string, previous: Labels = {}): Labels {
  return parsePair('tag', 'env=prod', value, previous);
}

/** `--label k=v`, repeatable (a hosted pool's member labels); `--label none` alone clears them. */
export function parseLabel(value: string, previous: Labels = {}): Labels {
  if (value === 'none') return {};
  return parsePair('label', 'gpu=a100', value, previous);
}

/**
 * `--ttl`, `--timeout`, hosted pools' waits: a protocol duration (1h, 30m,
 * 1h30m) that the API's PositiveDuration takes (longer than 0s, at most ten
 * years); kept as typed.
 */
export function parsePositiveDuration(value: string): string {
  try {
    parseDuration(value); // its message names the bad text, which the schema's does not
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  const checked = PositiveDuration.safeParse(value);
  if (!checked.success) throw new InvalidArgumentError(checked.error.issues[0]!.message);
  return value.trim();
}

/** `--uses`, `--limit`: a positive integer. */
export function parsePositiveInt(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a positive integer');
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}
