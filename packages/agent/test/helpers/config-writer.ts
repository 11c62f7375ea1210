import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { RunnerConfig } from '@rbtk/protocol';

/** The built writeConfig, run by child processes: what the daemon runs (build first: npm run build). */
const WRITE_JS = pathToFileURL(fileURLToPath(new URL('../../dist/config/write.js', import.meta.url))).href;

/** Rewrites runner.yaml in a loop (a new token each time) until killed. */
const LOOP = `
const { writeConfig } = await import(process.argv[1]);
const cfg = JSON.parse(process.argv[3]);
for (let i = 0; ; i++) await writeConfig(process.argv[2], { ...cfg, token: cfg.token + i });
`;

/** Writes runner.yaml once. */
const ONCE = `
const { writeConfig } = await import(process.argv[1]);
await writeConfig(process.argv[2], JSON.parse(process.argv[3]));
`;

const MARK = /^(.+\.\d+)\.rbtk-writing$/;

/**
 * SIGKILLs a real process in the middle of writeConfig(path) until it leaves a temp
 * file behind (with its mark) in `tempDir` (the directory the write really happens
 * in); returns the temp file's name.
 */
export async function interruptedWrite(path: string, cfg: RunnerConfig, tempDir: string, attempts = 40): Promise<string> {
  for (let i = 0; i < attempts; i++) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', LOOP, WRITE_JS, path, JSON.stringify(cfg)], { stdio: 'ignore' });
    const exited = once(child, 'exit');
    const deadline = Date.now() + 10_000;
    // Kill as soon as a write is under way: a temp file with its mark (a mark alone may be left
    // by an earlier kill that came after the rename).
    while (!(await markedTemp(tempDir)) && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    child.kill('SIGKILL');
    await exited;
    const left = await markedTemp(tempDir);
    if (left) return left;
  }
  throw new Error(`no write was interrupted with its temp file in place after ${attempts} tries`);
}

async function markedTemp(dir: string): Promise<string | undefined> {
  const names = await readdir(dir);
  return names.map((n) => MARK.exec(n)?.[1]).find((tmp) => tmp !== undefined && names.includes(tmp));
}

/** Runs writeConfig(path) once in a child under strace; resolves with the trace (paths of fds shown). */
export async function tracedWrite(path: string, cfg: RunnerConfig, traceFile: string): Promise<void> {
  const child = spawn(
    'strace',
    ['-f', '-qq', '-y', '-e', 'trace=rename,renameat,renameat2,fsync', '-o', traceFile, process.execPath, '--input-type=module', '-e', ONCE, WRITE_JS, path, JSON.stringify(cfg)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`traced write exited ${code}: ${stderr}`);
}
