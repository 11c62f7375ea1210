import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { formatToken, type TokenKind } from '@rbtk/protocol';

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A random alphanumeric id; rejection sampling keeps every character equally likely. */
export function randomId(length = 16): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 = 4 * 62: bytes at or above it would favour the first characters.
      if (byte < 248) out += ALPHANUMERIC[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** sha256 of a token secret, hex: all the coordinator ever stores. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Compares a presented secret with a stored hash in constant time. */
export function verifySecret(secret: string, storedHash: string): boolean {
  const presented = Buffer.from(hashSecret(secret), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}

export interface MintedToken {
  id: string;
  /** The whole token, `rbtk_<kind>_<id>_<secret>`: shown once, never stored. */
  token: string;
  hash: string;
}

/** A new token: 16-character id, 32 random bytes of secret (base64url). */
export function mintToken(kind: TokenKind): MintedToken {
  const id = randomId(16);
  const secret = randomBytes(32).toString('base64url');
  return { id, token: formatToken(kind, id, secret), hash: hashSecret(secret) };
}
