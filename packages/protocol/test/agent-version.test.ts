import fc from 'fast-check';
import semverCompare from 'semver/functions/compare.js';
import semverValid from 'semver/functions/valid.js';
import { describe, expect, it } from 'vitest';
import { isBelowVersion, isNewerVersion, isSemanticVersion } from '../src/agent-version.js';

describe('semantic version precedence (SemVer 2.0.0, section 11)', () => {
  it('orders the specification’s own example chain', () => {
    const chain = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.1.0', '2.0.0'];
    for (let i = 0; i < chain.length; i++) {
      for (let j = 0; j < chain.length; j++) {
        expect(isNewerVersion(chain[i]!, chain[j]!), `${chain[i]} > ${chain[j]}`).toBe(i > j);
        expect(isBelowVersion(chain[i]!, chain[j]!), `${chain[i]} < ${chain[j]}`).toBe(i < j);
      }
    }
  });

  it('ignores build metadata and takes a leading v', () => {
    expect(isNewerVersion('1.0.0+build.2', '1.0.0+build.1')).toBe(false);
    expect(isBelowVersion('1.0.0+sha.abc', '1.0.0')).toBe(false);
    expect(isNewerVersion('v1.2.4', '1.2.3')).toBe(true);
  });

  it('refuses what is not a version', () => {
    for (const bad of ['1.2', '01.2.3', '1.02.3', '1.2.3-01', '1.2.3-', '1.2.3+', '1.2.3-a..b', ' 1.2.3', '1.2.3 ', '9007199254740992.0.0', `1.2.3-${'a'.repeat(64)}`, '', 'dev']) {
      expect(isSemanticVersion(bad), bad).toBe(false);
    }
  });

  it('agrees with the semver package on random versions', () => {
    const num = fc.oneof(fc.constantFrom('0', '1', '2', '10', '11'), fc.integer({ min: 0, max: 99_999 }).map(String));
    const ident = fc.oneof(num, fc.constantFrom('alpha', 'beta', 'rc', 'a-1', 'x', '0a', '-'), fc.stringMatching(/^[0-9A-Za-z-]{1,5}$/));
    const version = fc
      .tuple(num, num, num, fc.option(fc.array(ident, { minLength: 1, maxLength: 3 })), fc.option(fc.array(fc.stringMatching(/^[0-9A-Za-z-]{1,4}$/), { minLength: 1, maxLength: 2 })))
      .map(([a, b, c, pre, build]) => `${a}.${b}.${c}${pre ? `-${pre.join('.')}` : ''}${build ? `+${build.join('.')}` : ''}`);
    fc.assert(
      fc.property(version, version, (a, b) => {
        const valid = semverValid(a) !== null && semverValid(b) !== null;
        expect(isSemanticVersion(a) && isSemanticVersion(b)).toBe(valid);
        if (!valid) return;
        const c = semverCompare(a, b);
        expect(isNewerVersion(a, b)).toBe(c > 0);
        expect(isBelowVersion(a, b)).toBe(c < 0);
      }),
      { numRuns: 5_000 },
    );
  });
});
