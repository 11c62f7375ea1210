import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The built bin, run as a real child process: what an operator runs. */
export const RBTK_BIN = fileURLToPath(new URL('../dist/cli/rbtk.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node dist/cli/rbtk.js ...args` to completion. RBTK_* variables of the test's own
 * environment are dropped so only `env` decides, and cwd defaults to one without .data/.
 */
export async function rbtk(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  if (!existsSync(RBTK_BIN)) throw new Error(`${RBTK_BIN} is missing: run \`npm run build\` first`);
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RBTK_')));
  const child = spawn(process.execPath, [RBTK_BIN, ...args], {
    env: { ...base, FORCE_COLOR: '0', ...opts.env },
    cwd: opts.cwd ?? fileURLToPath(new URL('.', import.meta.url)),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}
