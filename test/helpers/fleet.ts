import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ProcessGroup, runCli, type Proc, type RunResult } from './processes.js';

export interface CoordinatorFlags {
  offlineAfter?: string;
  reapAfter?: string;
  heartbeatInterval?: string;
  tokenRotation?: string;
  acceptTimeout?: string;
  /** Hosted pools' reconcile interval. */
  reconcileInterval?: string;
  minRunnerVersion?: string;
  /** How old /metrics' job counts may be (--metrics-refresh; 0s: fresh at every scrape). */
  metricsRefresh?: string;
  port?: number;
  /** Variables for the coordinator's environment only (DOCKER_HOST, RBTK_HOSTED_DOCKER_AGENT), also on restarts. */
  env?: NodeJS.ProcessEnv;
}

/**
 * A real fleet for one test file: coordinator and runner processes started
 * from the built bins, a temp directory for their files, and the operator CLI.
 */
export class Fleet {
  readonly procs = new ProcessGroup();
  coordinator!: Proc;
  url = '';
  adminToken = '';
  private flags: CoordinatorFlags = {};

  private constructor(readonly dir: string) {}

  static async create(): Promise<Fleet> {
    return new Fleet(await mkdtemp(join(tmpdir(), 'rbtk-e2e-')));
  }

  get dataDir(): string {
    return join(this.dir, 'coordinator');
  }

  async startCoordinator(flags: CoordinatorFlags = this.flags): Promise<Proc> {
    this.flags = flags;
    const port = flags.port ?? 0;
    const args = ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', this.dataDir];
    if (flags.offlineAfter) args.push('--offline-after', flags.offlineAfter);
    if (flags.reapAfter) args.push('--reap-after', flags.reapAfter);
    if (flags.heartbeatInterval) args.push('--heartbeat-interval', flags.heartbeatInterval);
    if (flags.tokenRotation) args.push('--token-rotation', flags.tokenRotation);
    if (flags.acceptTimeout) args.push('--accept-timeout', flags.acceptTimeout);
    if (flags.reconcileInterval) args.push('--reconcile-interval', flags.reconcileInterval);
    if (flags.minRunnerVersion) args.push('--min-runner-version', flags.minRunnerVersion);
    if (flags.metricsRefresh) args.push('--metrics-refresh', flags.metricsRefresh);
    this.coordinator = this.procs.spawn('coordinator', BIN.coordinator, args, flags.env);
    const listening = await this.coordinator.waitForLog((l) => l.msg === 'listening' && typeof l.url === 'string');
    this.url = listening.url as string;
    this.flags.port = Number(new URL(this.url).port);
    this.adminToken = (await readFile(join(this.dataDir, 'admin.token'), 'utf8')).trim();
    return this.coordinator;
  }

  /** SIGKILL the coordinator and start it again on the same port and data directory. */
  async restartCoordinator(signal: NodeJS.Signals = 'SIGKILL'): Promise<Proc> {
    this.coordinator.kill(signal);
    await this.coordinator.exited;
    return this.startCoordinator(this.flags);
  }

  /** Runs `rbtk` against this fleet's coordinator as the instance admin. */
  rbtk(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    return runCli(BIN.rbtk, args, { RBTK_URL: this.url, RBTK_TOKEN: this.adminToken, ...env });
  }

  /** `rbtk ... --json`, parsed; throws with stderr when the command fails. */
  async rbtkJson<T = unknown>(args: string[]): Promise<T> {
    const res = await this.rbtk([...args, '--json']);
    if (res.code !== 0) throw new Error(`rbtk ${args.join(' ')} exited ${res.code}: ${res.stderr}`);
    return JSON.parse(res.stdout) as T;
  }

  async mintToken(pool: string, ...extra: string[]): Promise<string> {
    const res = await this.rbtk(['pool', 'token', pool, ...extra]);
    if (res.code !== 0) throw new Error(`pool token failed: ${res.stderr}`);
    return res.stdout.trim();
  }

  configPath(name: string): string {
    return join(this.dir, name, 'runner.yaml');
  }

  /** `rbtk-runner register` into a config file of the runner's own. */
  register(name: string, token: string, ...extra: string[]): Promise<RunResult> {
    return runCli(BIN.runner, ['register', '--url', this.url, '--token', token, '--name', name, '--config', this.configPath(name), ...extra]);
  }

  /** Registers a runner into a pool, checking it worked; returns the runner id. */
  async registerRunner(pool: string, name: string, ...extra: string[]): Promise<string> {
    const res = await this.register(name, await this.mintToken(pool), ...extra);
    if (res.code !== 0) throw new Error(`register exited ${res.code}: ${res.stderr}`);
    return res.stdout.trim();
  }

  startRunner(name: string, env: NodeJS.ProcessEnv = {}): Proc {
    return this.procs.spawn(`runner ${name}`, BIN.runner, ['run', '--config', this.configPath(name)], env);
  }

  runner(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    return runCli(BIN.runner, args, env);
  }

  /** The runner as `rbtk runner show --json` sees it. */
  async runnerStatus(id: string): Promise<string | undefined> {
    const res = await this.rbtk(['runner', 'show', id, '--json']);
    if (res.code !== 0) return undefined;
    return (JSON.parse(res.stdout) as { status: string }).status;
  }

  /** Stops every process and removes the files; names the processes that would not stop on SIGTERM. */
  async close(): Promise<string[]> {
    const leftover = await this.procs.stopAll();
    await rm(this.dir, { recursive: true, force: true });
    return leftover;
  }
}
