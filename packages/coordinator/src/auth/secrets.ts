import { createHash, randomFillSync, timingSafeEqual } from 'node:crypto';
import { formatToken, type TokenKind } from '@rbtk/protocol';

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * Random bytes for ids, drawn from the CSPRNG 4 KiB at a time: a call per id
 * cost more than the rest of making it, and a busy coordinator makes one per
 * job. Each byte is used once. (Token secrets do not come from here.)
 */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

function randomByte(): number {
  if (poolAt === pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  return pool[poolAt++]!;
}

/**
 * Token secrets, drawn from the CSPRNG 32 at a time: a runner token is minted
 * on every rotation, and a randomBytes(32) call per token cost a tenth of the
 * rotation's CPU. Apart from the id pool, so an id never sits next to a
 * secret; each secret's bytes are zeroed once encoded, so none stays in the
 * pool after its token is made.
 */
const SECRET_BYTES = 32;
const secretPool = Buffer.alloc(SECRET_BYTES * 32);
let secretPoolAt = secretPool.length;

/** 32 random bytes, base64url. */
function newSecret(): string {
  if (secretPoolAt === secretPool.length) {
    randomFillSync(secretPool);
    secretPoolAt = 0;
  }
  const bytes = secretPool.subarray(secretPoolAt, secretPoolAt + SECRET_BYTES);
  secretPoolAt += SECRET_BYTES;
  const secret = bytes.toString('base64url');
  bytes.fill(0);
  return secret;
}

/** A random alphanumeric id; rejection sampling keeps every character equally likely. */
export function randomId(length = 16): string {
  let out = '';
  while (out.length < length) {
    const byte = randomByte();
    // 248 = 4 * 62: bytes at or above it would favour the first characters.
    if (byte < 248) out += ALPHANUMERIC[byte % 62];
  }
  return out;
}

/** Digits in ASCII order, so that ids compare (memcmp, SQLite's BINARY collation) as their numbers do. */
const ORDERED = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * A 16-character id that sorts by creation time: 8 characters of the
 * millisecond clock (base 62, good until the year 8900), then 8 random ones.
 * Job ids are keys of several indexes (jobs, job_events, job_logs); ids
 * created together sort together, so a commit of a burst of new jobs dirties
 * a few index pages at the right end instead of one random page per job.
 */
export function timeOrderedId(now = Date.now()): string {
  let clock = '';
  for (let n = Math.floor(now), i = 0; i < 8; i++, n = Math.floor(n / 62)) clock = ORDERED[n % 62] + clock;
  return clock + randomId(8);
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

/**
 * A new token: a 16-character time-ordered id, 32 random bytes of secret
 * (base64url). Time-ordered because a runner token is minted on every
 * rotation and its id keys the tokens table's index: new ids then land on the
 * index's last pages, and the old tokens a rotation trims (made at about the
 * same time as each other) share pages too, instead of each dirtying a random
 * page of a 200,000-row index. The id is not secret; the time it tells is the
 * token's createdAt, which `rbtk token list` shows anyway.
 */
export function mintToken(kind: TokenKind): MintedToken {
  const id = timeOrderedId();
  const secret = newSecret();
  return { id, token: formatToken(kind, id, secret), hash: hashSecret(secret) };
}
