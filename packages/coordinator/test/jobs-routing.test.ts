import { ROUTES } from '@rbtk/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCoordinator } from './helpers.js';
import { shellJob, SimRunner } from './jobs-helpers.js';

describe('job routing at submit', () => {
  let tc: TestCoordinator;
  const runners: SimRunner[] = [];

  beforeAll(async () => {
    tc = await TestCoordinator.start();
    await tc.createPool('build', { tags: { env: 'ci', team: 'a' } });
    await tc.createPool('prod-a', { tags: { env: 'prod' } });
    await tc.createPool('prod-b', { tags: { env: 'prod' } });
    await tc.createPool('vault', { airgapped: true, tags: { env: 'secure' } });
    await tc.createPool('lab', { airgapped: true, allowNonAirgappedJobs: true });
    runners.push(await SimRunner.start(tc, 'build', { name: 'b1', labels: { gpu: 'none' }, executors: ['shell'] }));
    runners.push(await SimRunner.start(tc, 'vault', { name: 'v1', airgapped: true, executors: ['docker'] }));
    runners.push(await SimRunner.start(tc, 'lab', { name: 'l1', airgapped: true, executors: ['shell'] }));
  });
  afterAll(async () => {
    for (const r of runners) r.terminate();
    await tc.stop();
  });

  const submit = (spec: unknown, token?: string) => tc.api('POST', ROUTES.jobs, { body: spec, token });

  it('refuses an unknown pool with 404 pool_not_found', async () => {
    expect(await submit(shellJob('nope'))).toEqual({
      status: 404,
      body: { error: { code: 'pool_not_found', message: 'pool "nope" does not exist in project "default"' } },
    });
  });

  it('refuses a selector no pool matches, and one that matches several', async () => {
    const none = await submit({ selector: { env: 'qa' }, executor: { type: 'shell', command: ['true'] } });
    expect(none.status).toBe(400);
    expect(none.body.error).toEqual({ code: 'no_pool_matches', message: 'no pool in project "default" has tags env=qa' });
    const many = await submit({ selector: { env: 'prod' }, executor: { type: 'shell', command: ['true'] } });
    expect(many.body.error.code).toBe('ambiguous_selector');
    expect(many.body.error.message).toContain('"prod-a", "prod-b"');
  });

  it('routes a selector that matches exactly one pool', async () => {
    const res = await submit({ selector: { env: 'ci' }, executor: { type: 'shell', command: ['true'] } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ pool: 'build', project: 'default', attempt: 0 });
  });

  it('refuses jobs no registered runner could ever run (unsatisfiable, naming the predicate)', async () => {
    const cases: [unknown, string][] = [
      [shellJob('prod-a'), 'pool "prod-a" has no registered runners'],
      [shellJob('build', { requires: { labels: { gpu: 'a100' } } }), 'no runner in pool "build" has labels gpu=a100'],
      [{ pool: 'build', executor: { type: 'docker', image: 'busybox' } }, 'no runner in pool "build" offers the docker executor'],
      [shellJob('build', { requires: { labels: {}, airgapped: true } }), 'job requires an air-gapped pool, and pool "build" is not air-gapped'],
      [shellJob('build', { requires: { labels: {}, gpus: 2 } }), 'no runner in pool "build" has 2 usable GPU(s)'],
      [
        { pool: 'vault', requires: { airgapped: true }, executor: { type: 'docker', image: 'busybox', pull: 'always' } },
        'pool "vault" is air-gapped: its runners never pull, so pull policy "always" cannot run there',
      ],
      [
        { pool: 'vault', executor: { type: 'docker', image: 'busybox', pull: 'never' } },
        'pool "vault" is air-gapped and takes only jobs that require it (requires.airgapped: true, rbtk job submit --airgapped); create the pool with --allow-non-airgapped-jobs to take others',
      ],
    ];
    for (const [spec, message] of cases) {
      const res = await submit(spec);
      expect(res.status, message).toBe(400);
      expect(res.body.error).toEqual({ code: 'unsatisfiable', message });
    }
    // The same pool takes what its runner can do.
    expect((await submit({ pool: 'vault', requires: { airgapped: true }, executor: { type: 'docker', image: 'busybox', pull: 'never' } })).status).toBe(201);
    // An air-gapped pool that allows it takes any job, and an air-gapped job lands on it too.
    expect((await submit(shellJob('lab'))).status).toBe(201);
    expect((await submit(shellJob('lab', { requires: { labels: {}, airgapped: true } }))).status).toBe(201);
  });

  it('validates the spec: bad_request naming the field', async () => {
    const res = await submit({ pool: 'build', executor: { type: 'shell', command: [] } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('bad_request');
    expect(res.body.error.message).toContain('executor.command');
    expect((await submit({ executor: { type: 'shell', command: ['x'] } })).body.error.message).toContain('exactly one of');
    // A timeout of 0 would reach runners as an assignment they must refuse (timeoutMs is positive), again and again.
    for (const [timeout, message] of [
      ['0s', 'timeout: must be longer than 0s'],
      ['3651d', 'timeout: at most 3650d (ten years)'],
    ]) {
      const bad = await submit(shellJob('build', { timeout }));
      expect(bad.status, timeout).toBe(400);
      expect(bad.body.error.message).toContain(message);
    }
    expect((await submit(shellJob('build', { timeout: '30d' }))).status).toBe(201);
  });

  it('an idempotency key returns the existing job (200) instead of a second one', async () => {
    const spec = shellJob('build', { idempotencyKey: 'nightly-42' });
    const first = await submit(spec);
    expect(first.status).toBe(201);
    const again = await submit(spec);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const list = await tc.api('GET', `${ROUTES.jobs}?pool=build`);
    expect(list.body.filter((j: { spec: { idempotencyKey?: string } }) => j.spec.idempotencyKey === 'nightly-42')).toHaveLength(1);
  });

  it('answers a repeat with its job even when the pool could not take a new one any more', async () => {
    const only = await SimRunner.start(tc, 'gone', { name: 'g1', executors: ['shell'] });
    const spec = shellJob('gone', { idempotencyKey: 'deploy-7' });
    const first = await submit(spec);
    expect(first.status).toBe(201);
    // The pool's only runner is revoked: a new job there is refused, the repeat is not.
    expect((await tc.api('POST', ROUTES.runnerRevoke(only.runnerId))).status).toBe(200);
    expect((await submit(shellJob('gone'))).status).toBe(400);
    const again = await submit(spec);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    only.terminate();
  });

  it('submitter tokens use the job endpoints and get 403 everywhere else', async () => {
    const minted = await tc.api('POST', ROUTES.apiTokens, { body: { role: 'submitter', name: 'ci' } });
    const token = minted.body.token as string;
    const created = await submit(shellJob('build'), token);
    expect(created.status).toBe(201);
    expect((await tc.api('GET', ROUTES.job(created.body.id), { token })).body.id).toBe(created.body.id);
    const list = await tc.api('GET', `${ROUTES.jobs}?limit=2`, { token });
    expect(list.status).toBe(200);
    expect(list.body).toHaveLength(2);
    expect(list.body[0].id).toBe(created.body.id); // newest first
    expect((await tc.api('GET', ROUTES.jobLogs(created.body.id), { token })).body).toEqual([]);
    for (const [method, route, body] of [
      ['GET', ROUTES.pools],
      ['POST', ROUTES.pools, { name: 'x' }],
      ['GET', ROUTES.runners],
      ['POST', ROUTES.apiTokens, { role: 'admin' }],
      ['GET', ROUTES.audit],
    ] as const) {
      const res = await tc.api(method, route, { token, body });
      expect(res.status, `${method} ${route}`).toBe(403);
    }
    expect((await tc.api('POST', ROUTES.jobCancel(created.body.id), { token })).body.state).toBe('cancelled');
  });

  it('answers 404 for unknown jobs and 400 for bad list filters', async () => {
    expect((await tc.api('GET', ROUTES.job('nope'))).status).toBe(404);
    expect((await tc.api('GET', `${ROUTES.jobs}?state=done`)).status).toBe(400);
    expect((await tc.api('GET', `${ROUTES.jobs}?limit=0`)).status).toBe(400);
    expect((await tc.api('GET', `${ROUTES.jobs}?pool=nope`)).status).toBe(404);
  });
});
