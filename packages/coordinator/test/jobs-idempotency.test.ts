import { ErrorCode, ROUTES, type SubmitterEvent } from '@rbtk/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../src/jobs/idempotency.js';
import { TestCoordinator } from './helpers.js';
import { shellJob, SimRunner, SubmitterSocket } from './jobs-helpers.js';

const conflictMessage = (key: string, jobId: string) =>
  `idempotency key "${key}" was already used for job ${jobId} with a different spec: ` +
  'submit that same spec to get the job back, or use a new key for a new job';

describe('an idempotency key used again', () => {
  let tc: TestCoordinator;
  let runner: SimRunner;
  const sockets: SubmitterSocket[] = [];

  beforeAll(async () => {
    tc = await TestCoordinator.start();
    runner = await SimRunner.start(tc, 'build', { maxJobs: 8 });
  });
  afterAll(async () => {
    for (const s of sockets) s.ws.terminate();
    runner.terminate();
    await tc.stop();
  });

  const submit = (spec: unknown) => tc.api('POST', ROUTES.jobs, { body: spec });
  const keyed = async (key: string) =>
    ((await tc.api('GET', `${ROUTES.jobs}?pool=build`)).body as { id: string; spec: { idempotencyKey?: string } }[]).filter(
      (j) => j.spec.idempotencyKey === key,
    );

  it('canonical JSON ignores key order and undefined members, not array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: undefined } })).toBe(canonicalJson({ a: { d: [2, 1] }, b: 1 }));
    expect(canonicalJson({ a: [1, 2] })).not.toBe(canonicalJson({ a: [2, 1] }));
  });

  it('REST: the same spec (any key order, defaults spelled out or not) answers 200 with the job; another spec 409', async () => {
    const executor = { type: 'shell', command: ['make', 'test'], env: { A: '1', B: '2' } };
    const first = await submit({ pool: 'build', idempotencyKey: 'rest-1', executor });
    expect(first.status).toBe(201);
    const same = await submit({
      executor: { env: { B: '2', A: '1' }, command: ['make', 'test'], type: 'shell' },
      retries: 0,
      timeout: '1h',
      requires: { labels: {} },
      idempotencyKey: 'rest-1',
      pool: 'build',
    });
    expect(same.status, JSON.stringify(same.body)).toBe(200);
    expect(same.body.id).toBe(first.body.id);

    const changes = [
      { executor: { ...executor, command: ['make', 'lint'] } },
      { executor: { ...executor, env: { A: '1', B: '3' } } },
      { executor: { ...executor, command: ['test', 'make'] } },
      { executor, retries: 2 },
      { executor, name: 'nightly' },
      { executor, timeout: '60m' },
    ];
    for (const change of changes) {
      const refused = await submit({ pool: 'build', idempotencyKey: 'rest-1', ...change });
      expect(refused, JSON.stringify(change)).toEqual({
        status: 409,
        body: {
          error: { code: ErrorCode.IdempotencyConflict, message: conflictMessage('rest-1', first.body.id), details: { jobId: first.body.id } },
        },
      });
    }
    // Nothing was submitted or changed under the key.
    expect(await keyed('rest-1')).toEqual([expect.objectContaining({ id: first.body.id, spec: first.body.spec })]);
  });

  it('WebSocket: the repeat answers created false, another spec an idempotency_conflict error, and the socket stays open', async () => {
    const s = await SubmitterSocket.open(tc);
    sockets.push(s);
    const first = await s.submit(shellJob('build', { idempotencyKey: 'ws-1' }));
    expect(first).toMatchObject({ type: 'submitted', created: true });
    const id = first.type === 'submitted' ? first.job.id : '';
    expect(await s.submit(shellJob('build', { idempotencyKey: 'ws-1', timeout: '1h' }))).toMatchObject({
      type: 'submitted',
      created: false,
      job: { id },
    });
    const refused = await s.submit(shellJob('build', { idempotencyKey: 'ws-1', executor: { type: 'shell', command: ['echo', 'bye'] } }));
    expect(refused).toEqual({ type: 'error', reqId: expect.any(String), code: ErrorCode.IdempotencyConflict, message: conflictMessage('ws-1', id) });
    // The socket still takes requests.
    expect(await s.submit(shellJob('build'))).toMatchObject({ type: 'submitted', created: true });
    expect((await keyed('ws-1')).map((j) => j.id)).toEqual([id]);
  });

  it('two submits of one key in the same moment, with different specs: one job, and the other refused', async () => {
    const s = await SubmitterSocket.open(tc);
    sockets.push(s);
    // Sent back to back, both are taken before either is committed: the second meets the first in the insert.
    const reqs = ['a', 'b'].map((word) =>
      s.request({ type: 'submit', spec: shellJob('build', { idempotencyKey: 'race-1', executor: { type: 'shell', command: ['echo', word] } }) }),
    );
    const answers = await Promise.all(reqs.map((reqId) => s.next((e) => 'reqId' in e && e.reqId === reqId)));
    const submitted = answers.filter((e): e is Extract<SubmitterEvent, { type: 'submitted' }> => e.type === 'submitted');
    expect(submitted).toHaveLength(1);
    expect(submitted[0]!.created).toBe(true);
    expect(answers.find((e) => e.type === 'error')).toMatchObject({
      code: ErrorCode.IdempotencyConflict,
      message: conflictMessage('race-1', submitted[0]!.job.id),
    });
    expect((await keyed('race-1')).map((j) => j.id)).toEqual([submitted[0]!.job.id]);
  });
});
