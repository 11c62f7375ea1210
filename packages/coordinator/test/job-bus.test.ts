import { PassThrough } from 'node:stream';
import type { CoordinatorMessage } from '@rbtk/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/index.js';
import { assignTo, started } from '../src/jobs/decisions.js';
import type { JobBusEvent } from '../src/jobs/job-bus.js';
import { JobService } from '../src/jobs/job-service.js';
import { RunnerJobs } from '../src/jobs/runner-jobs.js';
import { type StoreWithPool, storeWithPool } from './store-helpers.js';

describe('a job watcher that throws', () => {
  let fixture: StoreWithPool;
  let service: JobService;
  const lines: Record<string, unknown>[] = [];

  beforeEach(() => {
    fixture = storeWithPool();
    const logs = new PassThrough();
    logs.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l))));
    service = new JobService({ store: fixture.store, log: createLogger({ level: 'error', destination: logs, pretty: false }), now: Date.now, acceptTimeoutMs: 10_000 });
  });
  afterEach(async () => {
    service.stop();
    await fixture.close();
    lines.length = 0;
  });

  /** A watcher that throws on every event, subscribed before a well-behaved one. */
  function watch(jobId: string): JobBusEvent[] {
    const seen: JobBusEvent[] = [];
    service.bus.subscribe(jobId, () => {
      throw new Error('watcher bug');
    });
    service.bus.subscribe(jobId, (e) => seen.push(e));
    return seen;
  }

  it("fails neither a runner's log frame nor a cancel, and the other watchers still get the event", async () => {
    const id = await fixture.submit();
    await fixture.store.jobs.transition([{ jobId: id, decide: assignTo('r1', 1) }], 1);
    await fixture.store.jobs.transition([{ jobId: id, decide: started('r1', 1, 2) }], 2);
    const seen = watch(id);

    // The runner's side, as its session runs it: a throw here would close the session with 1011.
    const sent: CoordinatorMessage[] = [];
    const runner = new RunnerJobs(service, 'r1', (m) => sent.push(m));
    await runner.onLog({ type: 'log', jobId: id, attempt: 1, offset: 0, stream: 'stdout', data: 'hello' });
    expect(sent).toEqual([{ type: 'log_ack', jobId: id, attempt: 1, offset: 5 }]);

    // An API request's side: the cancel is committed, and answered.
    const job = await service.cancel('default', id);
    expect(job).toMatchObject({ cancelRequested: true });

    expect(seen.map((e) => e.kind)).toEqual(['log', 'job']);
    expect(seen[0]).toMatchObject({ kind: 'log', offset: 0, data: 'hello' });
    const failures = lines.filter((l) => l.msg === 'job watcher failed on an event: skipped it');
    expect(failures.map((l) => [l.jobId, l.event, (l.err as { message: string }).message])).toEqual([
      [id, 'log', 'watcher bug'],
      [id, 'job', 'watcher bug'],
    ]);
  });
});
