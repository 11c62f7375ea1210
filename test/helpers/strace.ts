import { execFileSync } from 'node:child_process';

/**
 * Whether strace runs here. Tests that trace syscalls skip without it, saying
 * so, except under CI, where it is required (.ci/run installs it).
 */
export function requireStrace(what: string): boolean {
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    const message = `${what}: strace is not installed`;
    if (process.env.CI) throw new Error(`${message}; it is required under CI (.ci/run installs it)`);
    console.warn(`SKIPPING ${message} (apt-get install strace to run them).`);
    return false;
  }
}
