import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { runnerBundle } from '../dev/runner-process.js';

/**
 * What marks the agent build members run, for the spec hash: its package's
 * version and its built bundle's mtime and size (a dev rebuild keeps the
 * version), so an in-place upgrade of rbtk-runner rolls the members.
 * runnerBin is the package's bin/rbtk-runner.js.
 */
export function agentMark(runnerBin: string): string {
  const pkgDir = path.resolve(path.dirname(runnerBin), '..');
  let version = '';
  try {
    version = String((JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { version?: unknown }).version ?? '');
  } catch {
    // No package.json next to it (RBTK_RUNNER_BIN elsewhere): the files alone mark it.
  }
  const files = [runnerBin, runnerBundle(runnerBin)].map((f) => {
    try {
      const st = statSync(f);
      return `${st.mtimeMs}:${st.size}`;
    } catch {
      return '-';
    }
  });
  return [version, ...files].join('|');
}
