import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  parseCoordinatorMessage,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_HEADER,
  ROUTES,
  type Assign,
  type Hello,
  type Job,
  type RegisterResponse,
} from '@rbtk/protocol';
import { startCoordinator, type Coordinator } from '../src/index.js';
import { rbtk } from './cli-run.js';

/*
 * `rbtk job` end to end: the real bin against a real coordinator on port 0, with a
 * simulated runner (a `ws` client speaking the runner frames) instead of rbtk-runner.
 * The simulated runner reads the job's command as a script:
 *   out:TEXT / err:TEXT   a line on stdout / stderr
 *   lines:N               the lines 1..N on stdout, in chunks
 *   exit:N                end failed with exit code N (exit:0 succeeds)
 *   timeout               end timed_out
 *   hang                  run until cancelled
 */

const HELLO: Hello = {
  type: 'hello',
  agentVersion: '0.1.0-test',
  host: { hostname: 'sim', os: 'linux', arch: 'x64', cpus: 4, memoryBytes: 8 * 2 ** 30 },
  capabilities: { executors: ['shell', 'docker'], maxJobs: 8, labels: { host: 'sim' }, airgapped: false },
  held: [],
};

class SimRunner {
  private readonly hanging = new Map<string, () => void>();
  private constructor(private readonly ws: WebSocket) {}

  static async start(url: string, token: string): Promise<SimRunner> {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + ROUTES.runnerSocket, {
      headers: { authorization: `Bearer ${token}`, [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) },
    });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const runner = new SimRunner(ws);
    const welcomed = new Promise<void>((resolve) => {
      ws.on('message', (data: Buffer) => {
        const parsed = parseCoordinatorMessage(data.toString());
        if (!parsed.ok) throw new Error(`coordinator sent an invalid frame: ${parsed.error}`);
        const m = parsed.message;
        if (m.type === 'welcome') resolve();
        else if (m.type === 'assign') void runner.run(m);
        else if (m.type === 'cancel') runner.hanging.get(`${m.jobId}/${m.attempt}`)?.();
      });
    });
    ws.send(JSON.stringify(HELLO));
    await welcomed;
    return runner;
  }

  private send(frame: object): void {
    this.ws.send(JSON.stringify(frame));
  }

  private async run(a: Assign): Promise<void> {
    const ids = { jobId: a.jobId, attempt: a.attempt };
    this.send({ type: 'accept', ...ids });
    this.send({ type: 'started', ...ids });
    let offset = 0;
    const log = (stream: 'stdout' | 'stderr', data: string) => {
      this.send({ type: 'log', ...ids, offset, stream, data });
      offset += Buffer.byteLength(data);
    };
    let outcome: 'succeeded' | 'failed' | 'cancelled' | 'timed_out' = 'succeeded';
    let exitCode: number | null = 0;
    for (const step of a.spec.executor.command ?? []) {
      const [verb, arg = ''] = [step.slice(0, step.indexOf(':') >>> 0), step.slice(step.indexOf(':') + 1)];
      if (verb === 'out') log('stdout', `${arg}\n`);
      else if (verb === 'err') log('stderr', `${arg}\n`);
      else if (verb === 'lines') {
        const all = Array.from({ length: Number(arg) }, (_, i) => `${i + 1}\n`).join('');
        for (let i = 0; i < all.length; i += 1000) log('stdout', all.slice(i, i + 1000));
      } else if (verb === 'exit') {
        exitCode = Number(arg);
        outcome = exitCode === 0 ? 'succeeded' : 'failed';
      } else if (step === 'timeout') {
        [outcome, exitCode] = ['timed_out', null];
      } else if (step === 'hang') {
        await new Promise<void>((resolve) => this.hanging.set(`${a.jobId}/${a.attempt}`, resolve));
        [outcome, exitCode] = ['cancelled', null];
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    this.send({ type: 'result', ...ids, outcome, exitCode, logBytes: offset, message: outcome === 'succeeded' ? undefined : `sim ${outcome}` });
  }

  close(): void {
    this.ws.close();
  }
}

let dir = '';
let coordinator: Coordinator;
let adminToken = '';
let runner: SimRunner | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rbtk-cli-job-'));
  coordinator = await startCoordinator({ dataDir: join(dir, '.data'), port: 0, logLevel: 'silent' });
  adminToken = (await readFile(coordinator.adminTokenFile, 'utf8')).trim();
  expect((await run(['pool', 'create', 'build'])).code).toBe(0);
  const reg = (await run(['pool', 'token', 'build'])).stdout.trim();
  const res = await fetch(new URL(ROUTES.register, coordinator.url), {
    method: 'POST',
    headers: { authorization: `Bearer ${reg}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'sim', labels: { host: 'sim' } }),
  });
  expect(res.status).toBe(201);
  runner = await SimRunner.start(coordinator.url, ((await res.json()) as RegisterResponse).token);
});

afterAll(async () => {
  runner?.close();
  await coordinator?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return rbtk(args, { env: { RBTK_URL: coordinator.url, RBTK_TOKEN: adminToken, ...env } });
}

async function json<T>(args: string[], env: NodeJS.ProcessEnv = {}): Promise<T> {
  const res = await run([...args, '--json'], env);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as T;
}

async function waitForState(id: string, states: string[], timeoutMs = 10_000): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await json<Job>(['job', 'show', id]);
    if (states.includes(job.state)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} is ${job.state}, not ${states.join('|')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('submit → show → logs → list', () => {
  it('prints the id, and show, logs and list find the job', async () => {
    const submitted = await run(['job', 'submit', '--pool', 'build', '--', 'out:hello from rbtk', 'err:a warning']);
    expect(submitted.code, submitted.stderr).toBe(0);
    const id = submitted.stdout.trim();
    expect(id).toMatch(/^\S+$/);

    const done = await waitForState(id, ['succeeded']);
    expect(done).toMatchObject({ pool: 'build', attempt: 1, exitCode: 0 });

    const show = await run(['job', 'show', id]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^state:\s+succeeded$/m);
    expect(show.stdout).toMatch(/^exit code:\s+0$/m);

    const logs = await run(['job', 'logs', id]);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toBe('hello from rbtk\n');
    expect(logs.stderr).toBe('a warning\n');
    const chunks = await json<{ offset: number; stream: string; data: string }[]>(['job', 'logs', id]);
    expect(chunks.map((c) => c.data).join('')).toBe('hello from rbtk\na warning\n');

    const list = await run(['job', 'list']);
    expect(list.code).toBe(0);
    const [header, ...rows] = list.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+STATE\s+POOL\s+ATTEMPT\s+EXIT\s+AGE\s+NAME\/COMMAND$/);
    expect(rows).toContainEqual(expect.stringMatching(new RegExp(`^${id}\\s+succeeded\\s+build\\s+1\\s+0\\s+\\d+s\\s+"out:hello from rbtk"`)));
    const filtered = await json<Job[]>(['job', 'list', '--pool', 'build', '--state', 'succeeded']);
    expect(filtered.map((j) => j.id)).toContain(id);
    expect(await json<Job[]>(['job', 'list', '--state', 'running'])).not.toContainEqual(expect.objectContaining({ id }));
  });

  it('returns the same job for the same idempotency key', async () => {
    const a = await run(['job', 'submit', '--pool', 'build', '--idempotency-key', 'deploy-42', '--', 'out:x']);
    const b = await run(['job', 'submit', '--pool', 'build', '--idempotency-key', 'deploy-42', '--', 'out:x']);
    expect(b.code).toBe(0);
    expect(b.stdout).toBe(a.stdout);
    expect(b.stderr).toMatch(/already exists/);
  });

  it('refuses the same idempotency key with another command: exit 1, naming the job it belongs to', async () => {
    const a = await run(['job', 'submit', '--pool', 'build', '--idempotency-key', 'deploy-43', '--', 'out:x']);
    expect(a.code, a.stderr).toBe(0);
    const id = a.stdout.trim();
    const refusal =
      `rbtk: idempotency key "deploy-43" was already used for job ${id} with a different spec: ` +
      'submit that same spec to get the job back, or use a new key for a new job\n';
    const b = await run(['job', 'submit', '--pool', 'build', '--idempotency-key', 'deploy-43', '--', 'out:y']);
    expect(b).toEqual({ code: 1, stdout: '', stderr: refusal });
    // --follow submits over the WebSocket: the same refusal and exit code.
    const followed = await run(['job', 'submit', '--pool', 'build', '--idempotency-key', 'deploy-43', '--follow', '--', 'out:y']);
    expect(followed).toEqual({ code: 1, stdout: '', stderr: refusal });
    // The same spec still answers with the job, and nothing else was submitted under the key.
    expect((await run(['job', 'submit', '--pool', 'build', '--idempotency-key', 'deploy-43', '--', 'out:x'])).stdout).toBe(a.stdout);
    const keyed = (await json<Job[]>(['job', 'list', '--pool', 'build'])).filter((j) => j.spec.idempotencyKey === 'deploy-43');
    expect(keyed.map((j) => [j.id, j.spec.executor.command])).toEqual([[id, ['out:x']]]);
  });

  it('exits 4 for an unknown job or pool, with the coordinator\'s message', async () => {
    const show = await run(['job', 'show', 'no-such-job']);
    expect(show.code).toBe(4);
    const pool = await run(['job', 'submit', '--pool', 'nope', '--', 'out:x']);
    expect(pool.code).toBe(4);
    expect(pool.stderr).toBe('rbtk: pool "nope" does not exist in project "default"\n');
    const followed = await run(['job', 'submit', '--pool', 'nope', '--follow', '--', 'out:x']);
    expect(followed.code).toBe(4);
    expect(followed.stderr).toBe(pool.stderr);
  });
});

describe('submit --follow', () => {
  it('streams stdout and stderr and exits 0 on success', async () => {
    const res = await run(['job', 'submit', '--pool', 'build', '--follow', '--', 'out:out-line', 'err:err-line']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe('out-line\n');
    expect(res.stderr).toContain('err-line\n');
  });

  it('passes the exit code through and keeps the whole log', async () => {
    const res = await run(['job', 'submit', '--pool', 'build', '--follow', '--', 'lines:2000', 'exit:3']);
    expect(res.code).toBe(3);
    expect(res.stdout).toBe(Array.from({ length: 2000 }, (_, i) => `${i + 1}\n`).join(''));
    expect(res.stderr).toMatch(/rbtk: job \S+ failed.*\(exit code 3\)/);
  });

  it('exits 124 for a job that timed out', async () => {
    const res = await run(['job', 'submit', '--pool', 'build', '--follow', '--', 'timeout']);
    expect(res.code).toBe(124);
  });

  it('cancel stops a running job; logs --follow then exits 130', async () => {
    const id = (await run(['job', 'submit', '--pool', 'build', '--', 'out:started', 'hang'])).stdout.trim();
    await waitForState(id, ['running']);
    const cancel = await run(['job', 'cancel', id]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stdout).toMatch(new RegExp(`cancel(led|ling) job ${id}`));
    await waitForState(id, ['cancelled']);
    const follow = await run(['job', 'logs', id, '--follow']);
    expect(follow.code).toBe(130);
    expect(follow.stdout).toBe('started\n');
    const again = await run(['job', 'cancel', id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already cancelled/);
  });
});

describe('a submitter token', () => {
  it('may submit, follow, show, list, read logs and cancel, and nothing else', async () => {
    const created = await run(['token', 'create', '--role', 'submitter', '--name', 'ci']);
    expect(created.code, created.stderr).toBe(0);
    const env = { RBTK_TOKEN: created.stdout.trim() };

    const id = (await run(['job', 'submit', '--pool', 'build', '--', 'out:as submitter'], env)).stdout.trim();
    expect(id).not.toBe('');
    expect((await run(['job', 'show', id], env)).code).toBe(0);
    expect((await run(['job', 'list'], env)).code).toBe(0);
    const followed = await run(['job', 'submit', '--pool', 'build', '--follow', '--', 'out:followed', 'exit:5'], env);
    expect(followed.code).toBe(5);
    expect(followed.stdout).toBe('followed\n');
    const hung = (await run(['job', 'submit', '--pool', 'build', '--', 'hang'], env)).stdout.trim();
    expect((await run(['job', 'cancel', hung], env)).code).toBe(0);
    await waitForState(id, ['succeeded']);
    expect((await run(['job', 'logs', id], env)).stdout).toBe('as submitter\n');

    const pools = await run(['pool', 'list'], env);
    expect(pools.code).toBe(5);
    expect((await run(['pool', 'create', 'mine'], env)).code).toBe(5);
  });

  it('a wrong token exits 5 on the socket too', async () => {
    const res = await run(['job', 'submit', '--pool', 'build', '--follow', '--', 'out:x'], { RBTK_TOKEN: 'rbtk_api_abcdefgh12345678_wrongwrongwrong' });
    expect(res.code).toBe(5);
    expect(res.stderr).toMatch(/\(token from --token or RBTK_TOKEN\)/);
  });
});
