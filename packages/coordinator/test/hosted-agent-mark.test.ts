import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostedPoolCreate } from '@rbtk/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { agentMark } from '../src/hosted/agent-mark.js';
import { specHash } from '../src/hosted/spec-hash.js';

/** An agent package as installed: package.json, bin/rbtk-runner.js and the bundle it imports, dist/bundle/rbtk-runner.js. */
function agentPackage(dir: string, version: string, entry: string): string {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'dist', 'bundle'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: '@rbtk/agent', version }));
  writeFileSync(join(dir, 'bin', 'rbtk-runner.js'), "import '../dist/bundle/rbtk-runner.js';\n");
  writeFileSync(join(dir, 'dist', 'bundle', 'rbtk-runner.js'), entry);
  return join(dir, 'bin', 'rbtk-runner.js');
}

describe('agentMark (real files)', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const pkg = () => {
    const d = mkdtempSync(join(tmpdir(), 'rbtk-agent-'));
    dirs.push(d);
    return d;
  };
  const spec = HostedPoolCreate.parse({ provider: 'process', target: 1 });

  it('an in-place upgrade at the same path changes the spec hash: a new version, or a rebuild with the same version', () => {
    const dir = pkg();
    const bin = agentPackage(dir, '1.0.0', 'console.log(1);\n');
    const before = agentMark(bin);
    expect(agentMark(bin)).toBe(before);
    // Upgraded in place: same path, new version.
    agentPackage(dir, '1.1.0', 'console.log(1);\n');
    utimesSync(join(dir, 'dist', 'bundle', 'rbtk-runner.js'), 1_000, 1_000);
    utimesSync(bin, 1_000, 1_000);
    const upgraded = agentMark(bin);
    expect(upgraded).not.toBe(before);
    expect(specHash(spec, upgraded)).not.toBe(specHash(spec, before));
    // Rebuilt in dev: the version stays, the built entry changes.
    writeFileSync(join(dir, 'dist', 'bundle', 'rbtk-runner.js'), 'console.log(22);\n');
    utimesSync(join(dir, 'dist', 'bundle', 'rbtk-runner.js'), 2_000, 2_000);
    expect(agentMark(bin)).not.toBe(upgraded);
  });
});
