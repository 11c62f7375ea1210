const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * Parses the durations used on every command line and in runner.yaml:
 * `500ms`, `2s`, `15m`, `24h`, `7d`, or compounds such as `1h30m`.
 * Throws a RangeError naming the bad input.
 */
export function parseDuration(text: string): number {
  const input = text.trim();
  if (input === '') throw new RangeError('empty duration: write it like 500ms, 2s, 15m or 24h');
  if (/^\d+$/.test(input) && Number(input) === 0) return 0;
  let total = 0;
  let rest = input;
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)/.exec(rest);
    if (!m) throw new RangeError(`invalid duration "${text}": write it like 500ms, 2s, 15m or 24h`);
    total += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}

/** True when text is a duration parseDuration accepts. */
export function isDuration(text: string): boolean {
  try {
    parseDuration(text);
    return true;
  } catch {
    return false;
  }
}

/** The shortest readable form: 1500 → "1.5s", 90000 → "1m30s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [['d', UNIT_MS.d], ['h', UNIT_MS.h], ['m', UNIT_MS.m]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0) parts.push(`${rest / 1000}s`);
  return parts.join('');
}
