/**
 * Token formats. Every secret rbtk mints looks like `rbtk_<kind>_<id>_<secret>`:
 * the prefix lets secret scanners and people tell what leaked, the id finds the
 * stored hash without a timing-sensitive lookup, and only the secret is hashed.
 */
export const TokenKind = {
  /** Operator or submitter API token. */
  Api: 'api',
  /** Registration token: exchanged once (or N times) for a runner token. */
  Registration: 'reg',
  /** Runner token: authenticates one runner; rotates on heartbeats. */
  Runner: 'run',
} as const;
export type TokenKind = (typeof TokenKind)[keyof typeof TokenKind];

export interface ParsedToken {
  kind: TokenKind;
  id: string;
  secret: string;
}

const TOKEN_RE = /^rbtk_(api|reg|run)_([A-Za-z0-9]{8,64})_([A-Za-z0-9_-]{16,128})$/;

/** Splits a token into kind, id and secret; null when it is not an rbtk token. */
export function parseToken(token: string): ParsedToken | null {
  const m = TOKEN_RE.exec(token.trim());
  if (!m) return null;
  return { kind: m[1] as TokenKind, id: m[2]!, secret: m[3]! };
}

export function formatToken(kind: TokenKind, id: string, secret: string): string {
  return `rbtk_${kind}_${id}_${secret}`;
}

/** What may be logged about a token: its kind and id, never the secret. */
export function redactToken(token: string): string {
  const parsed = parseToken(token);
  return parsed ? `rbtk_${parsed.kind}_${parsed.id}_…` : '[redacted]';
}
