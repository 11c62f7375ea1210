import { existsSync, readFileSync } from 'node:fs';

/**
 * This agent's own package.json: the nearest one above this module, which is
 * the package's from src/ (tests), dist/ and dist/bundle/ (the bin) alike.
 */
export const OWN_PACKAGE_JSON = findPackageJson(new URL('.', import.meta.url));

function findPackageJson(dir: URL): URL {
  for (;;) {
    const candidate = new URL('package.json', dir);
    if (existsSync(candidate)) return candidate;
    const parent = new URL('..', dir);
    // At the root: no package.json anywhere above; agentVersion() says so on use.
    if (parent.href === dir.href) return candidate;
    dir = parent;
  }
}

let cached: string | undefined;

/**
 * The agent's version, from its package.json. Read on first use (not on
 * import), so it stays the version this process loaded.
 */
export function agentVersion(): string {
  if (cached === undefined) {
    const pkg = JSON.parse(readFileSync(OWN_PACKAGE_JSON, 'utf8')) as { version?: string };
    cached = pkg.version ?? '0.0.0';
  }
  return cached;
}
