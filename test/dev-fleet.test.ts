import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, Proc, REPO_ROOT, runCli, waitFor } from './helpers/processes.js';

/*
 * `npm run dev` / `rbtk-coordinator dev`: the one-command local fleet, brought
 * up as a real child process in a temp directory. The job goes through the
 * exact command line it prints; Ctrl-C (SIGINT) must leave nothing running.
 */
const HELLO = /npx rbtk job submit --pool dev --follow -- echo hello$/;
const STARTUP_MS = 40_000;
/** npm run dev builds first (tsc -b and the agent's bundle): quick when dist/ is current, longer when not. */
const NPM_TIMEOUT_MS = 180_000;

const started: Proc[] = [];
const temps: string[] = [];
afterEach(async () => {
  for (const p of started.splice(0)) if (p.running) await p.stop('SIGKILL', 1000);
  for (const dir of temps.splice(0)) {
    for (const pid of await processesMentioning(dir)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'rbtk-dev-'));
  temps.push(dir);
  return dir;
}

/** A port nothing listens on right now, so two runs can use the same one. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Live processes whose command line names this path (a runner left behind would). */
async function processesMentioning(path: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const state = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (cmdline.includes(path) && !/^\d+ \(.*\) Z/.test(state)) pids.push(Number(entry));
  }
  return pids;
}

/** Our environment without anything that would point rbtk somewhere else. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: '0' };
  for (const key of ['RBTK_URL', 'RBTK_TOKEN', 'RBTK_TOKEN_FILE', 'RBTK_PROJECT', 'RBTK_LOG_LEVEL']) delete env[key];
  return env;
}

function spawnProc(name: string, command: string, args: string[], cwd: string, options: { detached?: boolean; env?: NodeJS.ProcessEnv } = {}): Proc {
  const child = spawn(command, args, {
    cwd,
    env: { ...cleanEnv(), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  const proc = new Proc(name, child);
  started.push(proc);
  return proc;
}

interface Banner {
  hello: string;
  runnerId: string;
  runnerPid: number;
  reused: boolean;
}

/** Waits for the banner and picks out the hello line and the runner; fails at once when dev exits first. */
async function banner(proc: Proc, timeoutMs = STARTUP_MS): Promise<Banner> {
  const deadline = Date.now() + timeoutMs;
  let hello: string | undefined;
  while (!(hello = proc.output.find((l) => HELLO.test(l.trim())))) {
    const why = !proc.running ? `${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode})` : Date.now() > deadline ? `no banner from ${proc.name} in ${timeoutMs} ms` : undefined;
    if (why) throw new Error(`${why}; last output:\n${proc.output.slice(-30).join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const runnerLine = proc.output.find((l) => l.trim().startsWith('runner '))!;
  const m = /\(([A-Za-z0-9]+), pid (\d+)\) in pool dev/.exec(runnerLine);
  expect(m, runnerLine).not.toBeNull();
  return { hello: hello.trim(), runnerId: m![1]!, runnerPid: Number(m![2]), reused: runnerLine.includes('(registration reused)') };
}

/** Runs a printed command line with sh, in cwd; `npx rbtk` is the built bin unless keepNpx. */
async function runLine(line: string, cwd: string, keepNpx = false) {
  const command = keepNpx ? line : line.replace(/\bnpx rbtk\b/, `'${process.execPath}' '${BIN.rbtk}'`);
  const child = spawn('sh', ['-c', command], { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  return { code, stdout, stderr };
}

/** The printed submit line ran `echo hello` to the end; when not, what it said instead. */
function expectHello(r: { code: number | null; stdout: string; stderr: string }): void {
  expect({ code: r.code, stdout: r.stdout }, r.stderr).toEqual({ code: 0, stdout: 'hello\n' });
}

/** Ctrl-C: SIGINT, then what it exited with; a process still there after 30 s is killed and fails the test. */
async function interrupt(proc: Proc): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const killed = await proc.stop('SIGINT', 30_000);
  expect(killed, `${proc.name} ignored SIGINT; last output:\n${proc.output.slice(-20).join('\n')}`).toBe(false);
  return proc.exited;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('the one-command local fleet', () => {
  it('rbtk-coordinator dev: the printed hello line works; SIGINT drains the runner, stops everything, exits 0; a second run reuses the runner', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const args = [BIN.coordinator, 'dev', '--listen', `127.0.0.1:${port}`];

    const first = spawnProc('dev', process.execPath, args, dir);
    const up = await banner(first);
    // The state is ./.data of the directory it runs in; rbtk finds the token there by itself.
    expect(up.hello).toBe(`RBTK_URL=http://127.0.0.1:${port} npx rbtk job submit --pool dev --follow -- echo hello`);
    expect(first.output.some((l) => l.includes(`admin token  ${join(dir, '.data', 'admin.token')}`))).toBe(true);
    expect(up.reused).toBe(false);
    expect(alive(up.runnerPid)).toBe(true);

    const hello = await runLine(up.hello, dir);
    expect(hello, hello.stderr).toMatchObject({ code: 0, stdout: 'hello\n' });

    expect(await interrupt(first)).toEqual({ code: 0, signal: null });
    // Runner first, then the coordinator.
    const stopped = first.lines.findIndex((l) => l.msg === 'runner stopped');
    const coordinatorStopped = first.lines.findIndex((l) => l.msg === 'stopped' && l.name === 'rbtk-coordinator');
    expect(first.lines[stopped]).toMatchObject({ code: 0 });
    expect(stopped).toBeGreaterThan(-1);
    expect(coordinatorStopped).toBeGreaterThan(stopped);
    expect(alive(up.runnerPid)).toBe(false);
    expect(await processesMentioning(dir)).toEqual([]);

    const second = spawnProc('dev-again', process.execPath, args, dir);
    const again = await banner(second);
    expect(again).toMatchObject({ runnerId: up.runnerId, reused: true });
    expect(second.lines.some((l) => l.msg === 'registered the dev runner')).toBe(false);
    const token = (await readFile(join(dir, '.data', 'admin.token'), 'utf8')).trim();
    const list = await runCli(BIN.rbtk, ['runner', 'list', '--json'], { RBTK_URL: `http://127.0.0.1:${port}`, RBTK_TOKEN: token });
    expect((JSON.parse(list.stdout) as { id: string }[]).map((r) => r.id)).toEqual([up.runnerId]);
    expect((await runLine(again.hello, dir)).stdout).toBe('hello\n');

    expect(await interrupt(second)).toEqual({ code: 0, signal: null });
    expect(await processesMentioning(dir)).toEqual([]);
  }, 120_000);

  it('npm run dev: Ctrl-C in its terminal (SIGINT to the process group) stops it all, runner first', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const dataDir = join(dir, '.data');
    // Its own process group, as a terminal's foreground job: npm, sh and node all get the Ctrl-C.
    const npm = spawnProc('npm run dev', 'npm', ['run', 'dev', '--', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], REPO_ROOT, { detached: true });
    const up = await banner(npm, NPM_TIMEOUT_MS - 30_000);
    // Pasted in the repository, where npx finds rbtk in node_modules/.bin.
    expect(up.hello).toBe(`RBTK_URL=http://127.0.0.1:${port} RBTK_TOKEN_FILE=${join(dataDir, 'admin.token')} npx rbtk job submit --pool dev --follow -- echo hello`);
    const hello = await runLine(up.hello, REPO_ROOT, true);
    expect(hello, hello.stderr).toMatchObject({ code: 0, stdout: 'hello\n' });

    process.kill(-npm.pid, 'SIGINT');
    const timer = setTimeout(() => process.kill(-npm.pid, 'SIGKILL'), 30_000);
    const exit = await npm.exited;
    clearTimeout(timer);
    // npm re-raises the SIGINT on itself once its child is done.
    expect(exit.signal === 'SIGINT' || exit.code === 130 || exit.code === 0, JSON.stringify(exit)).toBe(true);
    const stopped = npm.lines.findIndex((l) => l.msg === 'runner stopped');
    expect(npm.lines[stopped], npm.output.slice(-20).join('\n')).toMatchObject({ code: 0 });
    expect(npm.lines.findIndex((l) => l.msg === 'stopped' && l.name === 'rbtk-coordinator')).toBeGreaterThan(stopped);
    // One Ctrl-C, even though npm forwards it to its child as well: the jobs were not cut short.
    expect(npm.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('second signal'))).toBe(false);
    expect(alive(up.runnerPid)).toBe(false);
    await waitFor('every process of the fleet to exit', async () => (await processesMentioning(dir)).length === 0, 10_000);
  }, NPM_TIMEOUT_MS);

  it('without a reachable Docker Engine the runner offers shell only, and the hello line still works', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const dev = spawnProc('dev-no-docker', process.execPath, [BIN.coordinator, 'dev', '--listen', `127.0.0.1:${port}`], dir, {
      env: { DOCKER_HOST: `unix://${join(dir, 'no-docker.sock')}` },
    });
    const up = await banner(dev);
    expect(dev.output.find((l) => l.trim().startsWith('runner '))).toMatch(/executors shell$/);
    expect(dev.output.some((l) => l.includes('--image busybox'))).toBe(false);
    expect(dev.lines.find((l) => l.component === 'dev' && typeof l.reason === 'string' && l.reason.includes('no-docker.sock'))).toBeDefined();
    expectHello(await runLine(up.hello, dir));
    expect(await interrupt(dev)).toEqual({ code: 0, signal: null });
    expect(await processesMentioning(dir)).toEqual([]);
  });

  it('a runner that drains for an upgrade (exit 75) is started again, as systemd would, and jobs go on', async () => {
    const dir = await tempDir();
    const port = await freePort();
    // The installed agent, as the runner sees it (RBTK_RUNNER_PACKAGE_JSON): at first the running version.
    const packageJson = join(dir, 'installed-package.json');
    const running = (JSON.parse(await readFile(join(REPO_ROOT, 'packages', 'agent', 'package.json'), 'utf8')) as { version: string }).version;
    await writeFile(packageJson, JSON.stringify({ name: '@rbtk/agent', version: running }));
    const dev = spawnProc('dev-upgrade', process.execPath, [BIN.coordinator, 'dev', '--listen', `127.0.0.1:${port}`], dir, {
      env: { RBTK_RUNNER_PACKAGE_JSON: packageJson },
    });
    const up = await banner(dev);

    // A package upgrade lands; SIGHUP makes the runner look now instead of within a minute.
    await writeFile(packageJson, JSON.stringify({ name: '@rbtk/agent', version: '99.0.0' }));
    process.kill(up.runnerPid, 'SIGHUP');
    await dev.waitForLog((l) => l.component === 'dev' && l.code === 75, 20_000);
    // What the restart loads is the "new" version: it must not see a newer one again.
    await writeFile(packageJson, JSON.stringify({ name: '@rbtk/agent', version: running }));
    const back = await dev.waitForLog((l) => l.msg === 'the dev runner is back online', 30_000);
    expect(back.pid).not.toBe(up.runnerPid);
    expect(alive(up.runnerPid)).toBe(false);
    expectHello(await runLine(up.hello, dir));

    expect(await interrupt(dev)).toEqual({ code: 0, signal: null });
    expect(await processesMentioning(dir)).toEqual([]);
  });
});
