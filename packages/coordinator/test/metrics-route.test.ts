import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ROUTES } from '@rbtk/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, tempDir, TestCoordinator } from './helpers.js';
import { shellJob, SimRunner, SubmitterSocket } from './jobs-helpers.js';

/*
 * GET /metrics on a real coordinator: open by default, behind a bearer token
 * with --metrics-token, and rbtk_jobs converging on the jobs' states within
 * --metrics-refresh.
 */

/** The value of the one sample `name{labels}` in a text exposition; undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

const scrape = async (tc: TestCoordinator, token?: string) => {
  const res = await fetch(tc.url + ROUTES.metrics, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { status: res.status, text: await res.text() };
};

describe('GET /metrics', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('is open without --metrics-token', async () => {
    const tc = await TestCoordinator.start();
    cleanups.push(() => tc.stop());
    const res = await scrape(tc);
    expect(res.status).toBe(200);
    expect(res.text).toMatch(/^# TYPE rbtk_jobs gauge$/m);
  });

  it('with --metrics-token wants it as a bearer token, and counts refusals under source "metrics"', async () => {
    const tc = await TestCoordinator.start({ metricsToken: 'scrape-secret' });
    cleanups.push(() => tc.stop());
    const none = await scrape(tc);
    expect(none.status).toBe(401);
    expect(JSON.parse(none.text).error).toEqual({ code: 'unauthorized', message: expect.stringMatching(/--metrics-token/) });
    expect((await scrape(tc, 'scrape-secreT')).status).toBe(401);
    // An API token is not the metrics token, even the instance admin's.
    expect((await scrape(tc, tc.adminToken)).status).toBe(401);
    const ok = await scrape(tc, 'scrape-secret');
    expect(ok.status).toBe(200);
    expect(sample(ok.text, 'rbtk_auth_failures_total', { source: 'metrics', reason: 'missing_token' })).toBe(1);
    expect(sample(ok.text, 'rbtk_auth_failures_total', { source: 'metrics', reason: 'wrong_token' })).toBe(2);
    expect(ok.text).not.toMatch(/rbtk_auth_failures_total\{source="api"/);
    // The health checks stay open.
    expect((await fetch(tc.url + ROUTES.health)).status).toBe(200);
  });

  it('serves rbtk_jobs at most --metrics-refresh old, converging on the jobs as they change', async () => {
    const tc = await TestCoordinator.start({ metricsRefreshMs: 300 });
    cleanups.push(() => tc.stop());
    const runner = await SimRunner.start(tc, 'build');
    cleanups.push(() => runner.terminate());
    const submitter = await SubmitterSocket.open(tc);
    cleanups.push(() => submitter.close());
    const succeeded = async () => sample((await scrape(tc)).text, 'rbtk_jobs', { pool: 'build', state: 'succeeded' });
    expect(await succeeded()).toBe(0);

    for (let i = 0; i < 3; i++) {
      expect((await submitter.submit(shellJob('build'))).type).toBe('submitted');
      await runner.complete(await runner.take());
    }
    await eventually(async () => (await succeeded()) === 3);
    const text = (await scrape(tc)).text;
    expect(sample(text, 'rbtk_jobs', { pool: 'build', state: 'queued' })).toBe(0);
    expect(sample(text, 'rbtk_jobs', { pool: 'build', state: 'running' })).toBe(0);
  });
});

describe('rbtk-coordinator serve --metrics-token, --metrics-refresh', () => {
  const BIN = fileURLToPath(new URL('../dist/cli/coordinator.js', import.meta.url));

  it('takes the token from RBTK_METRICS_TOKEN and guards /metrics with it', async () => {
    const dir = tempDir();
    const child = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dir.dir, '--metrics-refresh', '0s'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, RBTK_METRICS_TOKEN: 'from-env' },
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.once('exit', () => reject(new Error('exited before listening')));
        createInterface({ input: child.stdout! }).on('line', (text) => {
          try {
            const line = JSON.parse(text) as { msg?: string; url?: string };
            if (line.msg === 'listening' && line.url) resolve(line.url);
          } catch {
            // not a log line
          }
        });
      });
      expect((await fetch(url + ROUTES.metrics)).status).toBe(401);
      expect((await fetch(url + ROUTES.metrics, { headers: { authorization: 'Bearer from-env' } })).status).toBe(200);
    } finally {
      child.kill('SIGKILL');
      dir.cleanup();
    }
  });

  it('exits 2 for an empty token or a refresh that is no duration', () => {
    for (const args of [['--metrics-token', ''], ['--metrics-token', 'a b'], ['--metrics-refresh', 'soon']]) {
      const res = spawnSync(process.execPath, [BIN, 'serve', ...args], { encoding: 'utf8' });
      expect(res.status, args.join(' ')).toBe(2);
      expect(res.stderr).toMatch(new RegExp(args[0]!));
    }
  });
});
