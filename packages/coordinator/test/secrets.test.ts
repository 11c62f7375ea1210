import { parseToken, TokenKind } from '@rbtk/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { hashSecret, mintToken, verifySecret } from '../src/auth/secrets.js';

describe('mintToken', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('makes tokens that parse, verify against their stored hash only, and never repeat across pool refills', () => {
    // 200 tokens: the secret pool (32 secrets) refills six times.
    const minted = Array.from({ length: 200 }, () => mintToken(TokenKind.Runner));
    const secrets = new Set<string>();
    for (const m of minted) {
      const parsed = parseToken(m.token)!;
      expect(parsed).toMatchObject({ kind: TokenKind.Runner, id: m.id });
      expect(parsed.secret).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 bytes, base64url
      expect(m.hash).toBe(hashSecret(parsed.secret));
      expect(m.token).not.toContain(m.hash);
      expect(verifySecret(parsed.secret, m.hash)).toBe(true);
      expect(verifySecret(parsed.secret, minted[0] === m ? minted[1]!.hash : minted[0]!.hash)).toBe(false);
      secrets.add(parsed.secret);
    }
    expect(secrets.size).toBe(200);
    expect(new Set(minted.map((m) => m.id)).size).toBe(200);
    // Not all zero, nor one byte repeated: the pool is filled before each use, and wiped only after.
    expect(minted.every((m) => !/^(.)\1+$/.test(parseToken(m.token)!.secret))).toBe(true);
  });

  it('gives ids that sort by creation time, so new tokens land at the end of the id index', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const ids: string[] = [];
    for (const t of [Date.UTC(2026, 0, 1), Date.UTC(2026, 0, 1) + 1, Date.UTC(2026, 5, 1), Date.UTC(2031, 0, 1)]) {
      vi.setSystemTime(t);
      ids.push(mintToken(TokenKind.Api).id);
    }
    expect(ids.every((id) => /^[A-Za-z0-9]{16}$/.test(id))).toBe(true);
    expect([...ids].sort()).toEqual(ids);
  });
});
