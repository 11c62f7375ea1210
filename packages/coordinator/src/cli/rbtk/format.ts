import type { Labels } from '@rbtk/protocol';

/**
 * Human output: aligned tables and key: value lines. Values come from the server, so
 * control characters are replaced to keep a hostile name from driving the terminal.
 */

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

export function clean(text: string): string {
  return text.replace(CONTROL, ' ');
}

/** Columns separated by three spaces; the last column is not padded. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [headers, ...rows].map((row) => row.map(clean));
  const widths = headers.map((_, col) => Math.max(...all.map((row) => (row[col] ?? '').length)));
  const lines = all.map((row) =>
    row
      .map((cell, col) => (col === row.length - 1 ? cell : cell.padEnd(widths[col] ?? 0)))
      .join('   ')
      .trimEnd(),
  );
  return `${lines.join('\n')}\n`;
}

/** `key: value` lines with the values aligned. */
export function formatKeyValues(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([key]) => key.length)) + 1;
  return pairs.map(([key, value]) => `${`${key}:`.padEnd(width)}  ${clean(value)}`).join('\n') + '\n';
}

/** `env=prod,gpu=a100`, or `-` when there are none. */
export function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? '-' : entries.map(([k, v]) => `${k}=${v}`).join(',');
}

/** An ISO timestamp to the second (`2025-01-02T03:04:05Z`); the input as-is if it is not a date. */
export function formatTime(iso: string | null): string {
  if (iso === null) return '-';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** How long ago, in one coarse unit: `3s ago`, `5m ago`, `2h ago`, `3d ago`; `never` for null. */
export function formatAgo(iso: string | null, now: number): string {
  if (iso === null) return 'never';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  // A coordinator clock a little ahead of ours must not print "-1s ago".
  return `${formatSpan(now - t)} ago`;
}

/** A length of time in one coarse unit: `3s`, `5m`, `2h`, `3d` (negative counts as 0). */
export function formatSpan(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** Audit details as `k=v` pairs; non-string values as JSON. */
export function formatDetails(details: Record<string, unknown>): string {
  const entries = Object.entries(details);
  if (entries.length === 0) return '-';
  return entries.map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
