import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { RunnerMessage } from '@rbtk/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Execution, ExecutionResult, Executor } from '../src/executors/executor.js';
import { JobManager } from '../src/jobs/manager.js';
import { Spool, type SpooledAttempt, type SpoolMeta } from '../src/jobs/spool.js';
import { assignFrame, memoryLogger, tempDir, waitUntil } from './helpers/fixtures.js';

/** A real spool on a disk that answers late: each create waits until the test lets it write. */
class SlowSpool extends Spool {
  private opened!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.opened = resolve));

  override async create(meta: SpoolMeta): Promise<SpooledAttempt> {
    await this.gate;
    return super.create(meta);
  }

  open(): void {
    this.opened();
  }
}

/** Runs until the test ends it. */
class HoldingExecutor implements Executor {
  private readonly finishers = new Map<string, (r: ExecutionResult) => void>();

  start(attempt: { jobId: string }, _spec: unknown, sink: { started(): void }): Execution {
    const done = new Promise<ExecutionResult>((resolve) => this.finishers.set(attempt.jobId, resolve));
    sink.started();
    return { wait: () => done, stop: (reason) => this.finishers.get(attempt.jobId)?.({ outcome: reason.outcome, exitCode: null }) };
  }
}

describe("hello's held attempts", () => {
  let cleanup: () => Promise<void>;
  let spoolDir: string;
  let spool: SlowSpool;
  let manager: JobManager;
  let sent: RunnerMessage[];

  beforeEach(async () => {
    let dir: string;
    ({ dir, cleanup } = await tempDir());
    spoolDir = join(dir, 'spool');
    spool = new SlowSpool(spoolDir);
    const executor = new HoldingExecutor();
    sent = [];
    manager = new JobManager({
      runnerId: 'runner-held',
      config: { max_jobs: 2, executors: ['shell'] },
      executors: { shell: executor },
      spool,
      logger: memoryLogger().logger,
    });
    manager.attach((frame) => {
      sent.push(frame);
      return true;
    });
  });

  afterEach(async () => {
    spool.open();
    await manager.shutdown(0, 0);
    await cleanup();
  });

  const assign = (jobId: string, acceptWithinMs: number) =>
    manager.handle(assignFrame(jobId, { pool: 'ci', executor: { type: 'shell', command: ['true'] } }, { acceptWithinMs }));

  it('marks an attempt whose spool is still being written as accepting, and drops the mark once it accepts', async () => {
    assign('slow-disk', 5_000);
    // The slot is taken at once; the accept waits for the spool.
    expect(manager.heldAttempts()).toEqual([{ jobId: 'slow-disk', attempt: 1, finished: false, accepting: true }]);
    expect(sent.filter((f) => f.type === 'accept')).toHaveLength(0);

    spool.open();
    await waitUntil(() => sent.some((f) => f.type === 'accept'));
    expect(manager.heldAttempts()).toEqual([{ jobId: 'slow-disk', attempt: 1, finished: false }]);
    expect(existsSync(join(spoolDir, 'slow-disk-1', 'meta.json'))).toBe(true);
  });

  it('refuses for now, and runs nothing, when the spool is written only after the accept window', async () => {
    assign('too-late', 50);
    await new Promise((r) => setTimeout(r, 150));
    spool.open();
    await waitUntil(() => sent.some((f) => f.type === 'reject'));
    expect(sent).toEqual([
      { type: 'reject', jobId: 'too-late', attempt: 1, retryable: true, reason: expect.stringMatching(/^too late to accept: writing the spool took \d+ ms of the 50 ms given$/) },
    ]);
    expect(manager.heldAttempts()).toEqual([]);
    // Its spool is removed: a restart has nothing of it to report.
    await waitUntil(() => !existsSync(join(spoolDir, 'too-late-1')));
  });
});
