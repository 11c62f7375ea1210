import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, ROUTES, type Job } from '@rbtk/protocol';
import { TestCoordinator } from '../../packages/coordinator/test/helpers.js';
import { SimRunner } from '../../packages/coordinator/test/jobs-helpers.js';

/** Every wire error code: a fuzzed input must be answered with one of these. */
export const ERROR_CODES = new Set<string>(Object.values(ErrorCode));

/** Total inputs of the whole fuzz run (REST + both sockets); RBTK_FUZZ_INPUTS scales it. */
/** The good runner's pool: a name no fuzzer generates, so fuzzed submits never land there. */
export const GOOD_POOL = 'good-traffic-pool';

export const FUZZ_INPUTS = Number(process.env.RBTK_FUZZ_INPUTS ?? 100_000);

/**
 * An in-process coordinator for the property tests, with
 * - pool "good" and a well-behaved simulated runner that heartbeats and runs
 *   one job after another while the fuzzing goes on (GoodTraffic);
 * - pool "fuzz" and a registered runner whose token the fuzzers use;
 * - project "other" with its own pool, runner, admin and submitter tokens,
 *   and a job, so fuzzers can try one project's tokens and ids on another.
 * The data directory is on /dev/shm where there is one: fsync is then free, so
 * the runs measure the coordinator's parsing, not the disk.
 */
export class FuzzFixture {
  readonly good: GoodTraffic;

  private constructor(
    readonly tc: TestCoordinator,
    private readonly dataDir: string,
    readonly fuzzRunner: { id: string; token: string },
    readonly other: { adminToken: string; submitterToken: string; runnerId: string; runnerToken: string; jobId: string },
    readonly registrationToken: string,
    /** A job queued in pool "fuzz" (no runner takes it): fuzzers may watch and cancel it. */
    readonly fuzzJobId: string,
    goodRunner: SimRunner,
  ) {
    this.good = new GoodTraffic(tc, goodRunner);
  }

  static async start(): Promise<FuzzFixture> {
    const dataDir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'rbtk-fuzz-'));
    const tc = await TestCoordinator.start({ dataDir, heartbeatIntervalMs: 200, offlineAfterMs: 5_000 });
    const goodRunner = await SimRunner.start(tc, GOOD_POOL, { name: 'good' });
    const fuzz = await tc.newRunner('fuzz', 'fuzz-runner');
    const registrationToken = await tc.mintRegistrationToken('fuzz');

    const ok = <T>(res: { status: number; body: T }, what: string): T => {
      if (res.status >= 300) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    };
    ok(await tc.api('POST', ROUTES.projects, { body: { name: 'other' } }), 'project');
    await tc.createPool('theirs', {}, 'other');
    const reg = await tc.mintRegistrationToken('theirs', {}, 'other');
    const theirRunner = ok(await tc.register(reg, { name: 'their-runner' }), 'register other');
    const adminToken = ok(await tc.api('POST', `${ROUTES.apiTokens}?project=other`, { body: { role: 'admin' } }), 'token').token as string;
    const submitterToken = ok(await tc.api('POST', `${ROUTES.apiTokens}?project=other`, { body: { role: 'submitter' } }), 'token')
      .token as string;
    const theirJob = ok(
      await tc.api('POST', `${ROUTES.jobs}?project=other`, { body: { pool: 'theirs', executor: { type: 'shell', command: ['true'] } } }),
      'job',
    ) as Job;

    const fuzzJob = ok(await tc.api('POST', ROUTES.jobs, { body: { pool: 'fuzz', executor: { type: 'shell', command: ['true'] } } }), 'job') as Job;

    return new FuzzFixture(
      tc,
      dataDir,
      { id: fuzz.runnerId, token: fuzz.token },
      { adminToken, submitterToken, runnerId: theirRunner.runnerId, runnerToken: theirRunner.token, jobId: theirJob.id },
      registrationToken,
      fuzzJob.id,
      goodRunner,
    );
  }

  get url(): string {
    return this.tc.url;
  }

  get adminToken(): string {
    return this.tc.adminToken;
  }

  /** Job ids worth trying in runner frames: the good runner's (fenced: it holds them), another project's. */
  knownJobIds(): string[] {
    return [...this.good.jobIds.slice(-5), this.other.jobId, this.fuzzJobId];
  }

  /** Job ids a submitter may try to watch and cancel: another project's, and one nobody runs. */
  bystanderJobIds(): string[] {
    return [this.other.jobId, this.fuzzJobId];
  }

  async stop(): Promise<void> {
    await this.good.stop();
    await this.tc.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * Well-formed traffic from another client while the fuzzers run: the good
 * runner heartbeats every 100 ms and runs jobs submitted one after another,
 * each writing a log line. check() says whether it all kept flowing.
 */
export class GoodTraffic {
  readonly jobIds: string[] = [];
  completed = 0;
  heartbeatAcks = 0;
  private failure: unknown;
  private readonly loop: Promise<void>;
  private stopped = false;

  constructor(
    private readonly tc: TestCoordinator,
    private readonly runner: SimRunner,
  ) {
    runner.keepAlive(100);
    this.loop = this.run().catch((err: unknown) => {
      this.failure = err;
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const res = await this.tc.api('POST', ROUTES.jobs, { body: { pool: GOOD_POOL, executor: { type: 'shell', command: ['echo', 'good'] } } });
      if (res.status !== 201) throw new Error(`good submit answered ${res.status} ${JSON.stringify(res.body)}`);
      const id = (res.body as Job).id;
      this.jobIds.push(id);
      const a = await this.runner.take(10_000);
      if (a.jobId !== id) throw new Error(`good runner got ${a.jobId}, expected ${id}`);
      this.runner.started(a);
      const logAck = await this.runner.log(a, 0, `good ${id}\n`);
      if (logAck.offset !== Buffer.byteLength(`good ${id}\n`)) throw new Error(`good log acked at ${logAck.offset}`);
      const ack = await this.runner.result(a, 'succeeded', 0, logAck.offset);
      if (!ack.accepted) throw new Error(`good result refused: ${ack.reason}`);
      this.heartbeatAcks += this.runner.inbox.drain((m) => m.type === 'heartbeat_ack').length;
      const job = (await this.tc.api('GET', ROUTES.job(id))).body as Job;
      if (job.state !== 'succeeded' || job.runnerId !== this.runner.runnerId) throw new Error(`good job ended ${JSON.stringify(job)}`);
      const log = (await this.tc.api('GET', `${ROUTES.jobLogs(id)}?offset=0`)).body as { data: string }[];
      if (log.map((c) => c.data).join('') !== `good ${id}\n`) throw new Error(`good job's log is ${JSON.stringify(log)}`);
      this.completed++;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Throws if the good traffic failed; returns how much of it went through. */
  check(): { completed: number; heartbeatAcks: number } {
    if (this.failure) throw this.failure;
    return { completed: this.completed, heartbeatAcks: this.heartbeatAcks };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.runner.terminate();
  }
}
