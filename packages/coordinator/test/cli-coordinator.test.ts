import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';

// The built bin, as operators and systemd run it (`npm run build` first).
const BIN = fileURLToPath(new URL('../dist/cli/coordinator.js', import.meta.url));

function waitForLine(child: ChildProcess, match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no matching log line in time')), 10_000);
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (text) => {
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text);
      } catch {
        return;
      }
      if (match(line)) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('exit', () => reject(new Error('process exited before the line appeared')));
  });
}

describe.skipIf(!existsSync(BIN))('rbtk-coordinator serve', () => {
  it('logs the listening URL for --listen 127.0.0.1:0, serves, and exits 0 on SIGTERM', async () => {
    const dir = tempDir();
    const child = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dir.dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, RBTK_OFFLINE_AFTER: '2s', RBTK_MAX_LOG_BYTES: '8m' },
    });
    try {
      const line = await waitForLine(child, (l) => l.msg === 'listening');
      expect(line.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(line.offlineAfterMs).toBe(2000);
      expect(line.maxLogBytes).toBe(8 * 2 ** 20);
      expect((await fetch(`${line.url}/healthz`)).status).toBe(200);
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
      dir.cleanup();
    }
  });

  it('exits 2 with a clear message on bad values', () => {
    const bad = spawnSync(process.execPath, [BIN, 'serve', '--offline-after', 'soon'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--offline-after.*invalid duration "soon"/);
    const badEnv = spawnSync(process.execPath, [BIN, 'serve'], { encoding: 'utf8', env: { ...process.env, RBTK_LISTEN: 'nowhere' } });
    expect(badEnv.status).toBe(2);
    expect(badEnv.stderr).toMatch(/RBTK_LISTEN/);
    expect(spawnSync(process.execPath, [BIN, 'serve', '--bogus'], { encoding: 'utf8' }).status).toBe(2);
    const badSize = spawnSync(process.execPath, [BIN, 'serve', '--max-log-bytes', 'lots'], { encoding: 'utf8' });
    expect(badSize.status).toBe(2);
    expect(badSize.stderr).toMatch(/--max-log-bytes.*invalid size "lots"/);
    const help = spawnSync(process.execPath, [BIN, 'serve', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/--token-rotation/);
    expect(help.stdout).toMatch(/--max-log-bytes <size>[\s\S]*default: 64MiB, env: RBTK_MAX_LOG_BYTES/);
  });
});
