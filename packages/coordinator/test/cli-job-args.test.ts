import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { JobSpec, parseSubmitterRequest, ROUTES, type Job, type JobSpecInput, type SubmitterRequest } from '@rbtk/protocol';
import { rbtk } from './cli-run.js';

/*
 * `rbtk job` flags, against a stub coordinator that records what it is sent: usage errors
 * exit 2 with nothing sent, flags become the JobSpec the protocol describes, and
 * --follow ends with the exit code of the job the stub makes up from its command.
 */

interface Seen {
  method: string;
  url: string;
  body?: unknown;
}

let server: Server;
let wss: WebSocketServer;
let url = '';
const seen: Seen[] = [];
const frames: SubmitterRequest[] = [];

function stubJob(spec: JobSpecInput, extra: Partial<Job> = {}): Job {
  return {
    id: 'job-1',
    project: 'default',
    pool: spec.pool ?? 'picked',
    state: 'queued',
    spec: JobSpec.parse(spec),
    attempt: 0,
    runnerId: null,
    exitCode: null,
    reason: null,
    logBytes: 0,
    createdAt: new Date().toISOString(),
    startedAt: null,
    finishedAt: null,
    ...extra,
  };
}

/** `--follow` jobs: the command `end STATE [CODE]` ends in that state with that exit code. */
function ending(spec: JobSpecInput): Partial<Job> {
  const [, state = 'succeeded', code] = spec.executor.command ?? [];
  return { state: state as Job['state'], exitCode: code === undefined ? (state === 'succeeded' ? 0 : null) : Number(code), reason: state === 'succeeded' ? null : 'made up' };
}

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const body = text ? JSON.parse(text) : undefined;
      seen.push({ method: req.method ?? '', url: req.url ?? '', body });
      res.setHeader('content-type', 'application/json');
      if (req.method === 'POST' && req.url?.startsWith(ROUTES.jobs)) {
        const spec = body as JobSpecInput;
        // The idempotency key "again" plays an existing job (200, not 201).
        return res.writeHead(spec.idempotencyKey === 'again' ? 200 : 201).end(JSON.stringify(stubJob(spec)));
      }
      res.writeHead(200).end('[]');
    });
  });
  wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    seen.push({ method: 'UPGRADE', url: req.url ?? '' });
    wss.handleUpgrade(req, socket, head, (ws) => {
      let spec: JobSpecInput | undefined;
      ws.on('message', (data: Buffer) => {
        const parsed = parseSubmitterRequest(data.toString());
        if (!parsed.ok) throw new Error(parsed.error);
        const req = parsed.message;
        frames.push(req);
        const send = (f: object) => ws.send(JSON.stringify(f));
        if (req.type === 'submit') {
          spec = req.spec;
          send({ type: 'submitted', reqId: req.reqId, job: stubJob(spec), created: true });
        } else if (req.type === 'watch' && spec) {
          send({ type: 'ack', reqId: req.reqId });
          send({ type: 'job', job: stubJob(spec, { state: 'running', attempt: 1, runnerId: 'r1' }) });
          send({ type: 'log', jobId: 'job-1', offset: 0, stream: 'stdout', data: 'to stdout\n' });
          send({ type: 'log', jobId: 'job-1', offset: 10, stream: 'stderr', data: 'to stderr\n' });
          send({ type: 'job', job: stubJob(spec, { attempt: 1, runnerId: 'r1', ...ending(spec) }) });
        }
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  server.close();
  await once(server, 'close');
});

const env = () => ({ RBTK_URL: url, RBTK_TOKEN: 'rbtk_api_abcdefgh12345678_secretsecretsecret' });
const lastBody = () => seen.at(-1)?.body as Record<string, unknown>;

describe('rbtk job help', () => {
  it.each([['submit'], ['show'], ['logs'], ['cancel'], ['list']])('job %s --help', async (sub) => {
    const res = await rbtk(['job', sub, '--help']);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(`Usage: rbtk job ${sub}`);
    expect(res.stdout).toContain('--json');
  });

  it('lists the job commands and the follow exit codes in rbtk --help', async () => {
    const res = await rbtk(['--help']);
    expect(res.stdout).toMatch(/^\s+job\s/m);
    expect(res.stdout).toMatch(/124.*timed out/);
  });
});

describe('usage errors exit 2 before any request', () => {
  const cases: [string, string[], RegExp][] = [
    ['no pool nor selector', ['job', 'submit', '--', 'true'], /--pool NAME or --selector/],
    ['pool and selector', ['job', 'submit', '--pool', 'a', '--selector', 'env=prod', '--', 'true'], /not both/],
    ['no command for a shell job', ['job', 'submit', '--pool', 'a'], /needs a command/],
    ['image and shell', ['job', 'submit', '--pool', 'a', '--image', 'alpine', '--shell', '--', 'true'], /choose one/],
    ['pull without image', ['job', 'submit', '--pool', 'a', '--pull', 'never', '--', 'true'], /add --image/],
    ['bad pull policy', ['job', 'submit', '--pool', 'a', '--image', 'alpine', '--pull', 'sometimes'], /if-not-present, always, never/],
    ['bad pool name', ['job', 'submit', '--pool', 'Bad', '--', 'true'], /lowercase/],
    ['selector without =', ['job', 'submit', '--selector', 'prod', '--', 'true'], /key=value/],
    ['require given twice', ['job', 'submit', '--pool', 'a', '--require', 'a=1', '--require', 'a=2', '--', 'true'], /given twice/],
    ['bad env name', ['job', 'submit', '--pool', 'a', '--env', '1X=2', '--', 'true'], /letters, digits and _/],
    ['env without =', ['job', 'submit', '--pool', 'a', '--env', 'X', '--', 'true'], /NAME=value/],
    ['bad timeout', ['job', 'submit', '--pool', 'a', '--timeout', 'soon', '--', 'true'], /invalid duration/],
    ['zero timeout', ['job', 'submit', '--pool', 'a', '--timeout', '0s', '--', 'true'], /longer than 0s/],
    ['negative retries', ['job', 'submit', '--pool', 'a', '--retries', '-1', '--', 'true'], /integer|unknown option/],
    ['too many retries', ['job', 'submit', '--pool', 'a', '--retries', '101', '--', 'true'], /retries/],
    ['fractional gpus', ['job', 'submit', '--pool', 'a', '--gpus', '1.5', '--', 'true'], /integer/],
    ['follow with bad flags', ['job', 'submit', '--follow', '--', 'true'], /--pool NAME or --selector/],
    ['show without id', ['job', 'show'], /missing required argument/],
    ['logs without id', ['job', 'logs'], /missing required argument/],
    ['cancel without id', ['job', 'cancel'], /missing required argument/],
    ['bad state', ['job', 'list', '--state', 'done'], /queued, assigned, running/],
    ['bad limit', ['job', 'list', '--limit', '0'], /positive integer/],
    ['unknown job command', ['job', 'rerun', 'x'], /unknown command/],
  ];
  it.each(cases)('%s', async (_what, args, message) => {
    const before = seen.length;
    const res = await rbtk(args, { env: env() });
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toMatch(/^rbtk: /);
    expect(res.stderr).toMatch(message);
    expect(res.stdout).toBe('');
    expect(seen.length).toBe(before);
  });
});

describe('rbtk job submit builds the JobSpec from its flags', () => {
  it('a shell job: POST /v1/jobs, prints the id alone', async () => {
    const res = await rbtk(
      ['job', 'submit', '--pool', 'build', '--require', 'host=r1', '--gpus', '2', '--env', 'A=1', '--env', 'B=x=y', '--workdir', '/tmp',
        '--timeout', '10m', '--retries', '2', '--idempotency-key', 'k1', '--', 'sh', '-c', 'echo "$A"'],
      { env: env() },
    );
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe('job-1\n');
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/v1/jobs' });
    expect(lastBody()).toEqual({
      pool: 'build',
      requires: { labels: { host: 'r1' }, gpus: 2 },
      executor: { type: 'shell', command: ['sh', '-c', 'echo "$A"'], env: { A: '1', B: 'x=y' }, workdir: '/tmp' },
      timeout: '10m',
      retries: 2,
      idempotencyKey: 'k1',
    });
  });

  it('--image makes a docker job, the command optional; --selector and --project go along', async () => {
    const res = await rbtk(['job', 'submit', '--selector', 'env=prod', '--selector', 'gpu=a100', '--image', 'alpine:3', '--pull', 'never', '--project', 'ml'], { env: env() });
    expect(res.code, res.stderr).toBe(0);
    expect(seen.at(-1)?.url).toBe('/v1/jobs?project=ml');
    expect(lastBody()).toEqual({
      selector: { env: 'prod', gpu: 'a100' },
      requires: { labels: {} },
      executor: { type: 'docker', image: 'alpine:3', env: {}, pull: 'never' },
      timeout: '1h',
      retries: 0,
    });
  });

  it('says so on stderr when the idempotency key named an existing job', async () => {
    const res = await rbtk(['job', 'submit', '--pool', 'build', '--idempotency-key', 'again', '--', 'true'], { env: env() });
    expect(res.code).toBe(0);
    expect(res.stdout).toBe('job-1\n');
    expect(res.stderr).toMatch(/already exists with idempotency key again/);
  });

  it('--json prints the Job', async () => {
    const res = await rbtk(['job', 'submit', '--pool', 'build', '--json', '--', 'true'], { env: env() });
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ id: 'job-1', state: 'queued', spec: { executor: { command: ['true'] } } });
  });
});

describe('rbtk job submit --follow', () => {
  const follow = (...end: string[]) => rbtk(['job', 'submit', '--pool', 'build', '--follow', '--', 'end', ...end], { env: env() });

  it('submits and watches on one socket, streams both streams, exits 0 on success', async () => {
    const upgrades = seen.filter((s) => s.method === 'UPGRADE').length;
    const before = frames.length;
    const res = await follow('succeeded');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe('to stdout\n');
    expect(res.stderr).toContain('to stderr\n');
    expect(seen.filter((s) => s.method === 'UPGRADE').length).toBe(upgrades + 1);
    expect(frames.slice(before).map((f) => f.type)).toEqual(['submit', 'watch']);
  });

  it.each([
    ['failed', '3', 3],
    ['failed', undefined, 1],
    ['timed_out', undefined, 124],
    ['cancelled', undefined, 130],
  ])('a job that ends %s (exit code %s) exits %i', async (state, code, expected) => {
    const res = await follow(...[state, code].filter((x): x is string => x !== undefined));
    expect(res.code).toBe(expected);
    expect(res.stderr).toMatch(new RegExp(`rbtk: job job-1 ${state.replace('_', ' ')}: made up`));
  });

  it('--json prints one watch event per line', async () => {
    const res = await rbtk(['job', 'submit', '--pool', 'build', '--follow', '--json', '--', 'end', 'failed', '7'], { env: env() });
    expect(res.code).toBe(7);
    const events = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(events.map((e) => e.type)).toEqual(['job', 'log', 'log', 'job']);
  });
});
