import { readFileSync } from 'node:fs';

/** This agent's own package.json: the same path from src/ (tests) and dist/ (the bin). */
export const OWN_PACKAGE_JSON = new URL('../package.json', import.meta.url);

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
