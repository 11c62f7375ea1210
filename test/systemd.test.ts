import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { BIN, REPO_ROOT } from './helpers/processes.js';

const run = promisify(execFile);
const hasAnalyze = await run('systemd-analyze', ['--version']).then(() => true, () => false);
if (!hasAnalyze && process.env.CI) throw new Error('systemd-analyze is required under CI (apt-get install systemd)');
if (!hasAnalyze) console.warn('skipping systemd unit checks: systemd-analyze is not installed');

describe.skipIf(!hasAnalyze)('systemd units', () => {
  it.each([
    ['rbtk-runner.service', '/usr/bin/rbtk-runner', BIN.runner],
    ['rbtk-coordinator.service', '/usr/bin/rbtk-coordinator', BIN.coordinator],
  ])('%s passes systemd-analyze verify', async (unit, installedPath, builtPath) => {
    // verify checks that ExecStart exists; point it at the built bin, as a package would install it.
    const dir = await mkdtemp(join(tmpdir(), 'rbtk-units-'));
    try {
      const text = await readFile(join(REPO_ROOT, 'systemd', unit), 'utf8');
      await writeFile(join(dir, unit), text.replaceAll(installedPath, builtPath));
      const { stderr } = await run('systemd-analyze', ['verify', join(dir, unit)]).catch((err) => err);
      expect(String(stderr ?? '').split('\n').filter((l) => l.includes(unit))).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('never restarts a revoked runner, and restarts it on failure otherwise', async () => {
    const text = await readFile(join(REPO_ROOT, 'systemd', 'rbtk-runner.service'), 'utf8');
    expect(text).toMatch(/^Restart=on-failure$/m);
    expect(text).toMatch(/^RestartPreventExitStatus=.*\b77\b/m);
    expect(text).toMatch(/^NoNewPrivileges=yes$/m);
    expect(text).toMatch(/^ReadWritePaths=.*\/etc\/rbtk-runner/m);
  });
});
