import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CloseCode,
  ErrorCode,
  MAX_WS_FRAME_BYTES,
  parseRunnerMessage,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_HEADER,
  ROUTES,
} from '@rbtk/protocol';
import { frameArb, idArb, intish, jsonish, shortString, specialFrames, type Frame } from './arbitraries.js';
import { ERROR_CODES, FUZZ_INPUTS, FuzzFixture } from './fuzz-fixture.js';
import { FuzzSocket } from './socket-client.js';
import { SimRunner } from '../../packages/coordinator/test/jobs-helpers.js';

/** This file's share of the fuzz run, in frames. */
const INPUTS = Math.round(FUZZ_INPUTS * 0.5);
const BATCH = 50;

/*
 * Random and mutated frames on the runner socket (/v1/runner/ws), many per
 * connection. The protocol's own parser is the oracle: a frame it refuses must
 * be answered with an error naming that code and close 4400 (1009 when over
 * 1 MiB); one it accepts must leave the session working (a heartbeat after it
 * is answered) and get its usual answer — even when it is replayed, out of
 * order, for another runner's job or another project's. Meanwhile the good
 * runner's jobs must keep completing.
 */
describe('the runner socket under random and mutated frames', () => {
  let fx: FuzzFixture;
  let sent = 0;

  beforeAll(async () => {
    fx = await FuzzFixture.start();
  });

  afterAll(async () => {
    const good = fx.good.check();
    console.log(`runner-socket fuzz: ${sent} frames; meanwhile the good runner completed ${good.completed} jobs, ${good.heartbeatAcks} heartbeats acked`);
    await fx.stop();
  });

  const wsUrl = () => fx.url.replace(/^http/, 'ws') + ROUTES.runnerSocket;
  const headers = (token: string) => ({ authorization: `Bearer ${token}`, [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) });

  function messages() {
    const ids = () => idArb(fx.knownJobIds());
    const attempt = intish;
    const jobAttempt = { jobId: ids(), attempt };
    const hello = fc.record({
      type: fc.constant('hello'),
      agentVersion: fc.string({ maxLength: 70 }),
      host: fc.record({ hostname: shortString, os: fc.constant('linux'), arch: fc.constant('x64'), cpus: fc.nat(64), memoryBytes: fc.nat() }),
      capabilities: fc.record({
        executors: fc.subarray(['shell', 'docker']),
        maxJobs: fc.integer({ min: 0, max: 3 }),
        labels: fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
        airgapped: fc.boolean(),
      }),
      held: fc.array(fc.record({ ...jobAttempt, finished: fc.boolean() }), { maxLength: 3 }),
    });
    return fc.oneof(
      { weight: 1, arbitrary: hello },
      { weight: 3, arbitrary: fc.record({ type: fc.constant('heartbeat'), seq: intish }) },
      { weight: 2, arbitrary: fc.record({ type: fc.constant('token_confirm'), tokenId: ids() }) },
      { weight: 2, arbitrary: fc.record({ type: fc.constant('accept'), ...jobAttempt }) },
      { weight: 2, arbitrary: fc.record({ type: fc.constant('started'), ...jobAttempt }) },
      { weight: 2, arbitrary: fc.record({ type: fc.constant('reject'), ...jobAttempt, reason: shortString }) },
      {
        weight: 3,
        arbitrary: fc.record({ type: fc.constant('log'), ...jobAttempt, offset: intish, stream: fc.constantFrom('stdout', 'stderr', 'stdin'), data: fc.string({ maxLength: 100 }) }),
      },
      {
        weight: 3,
        arbitrary: fc.record(
          {
            type: fc.constant('result'),
            ...jobAttempt,
            outcome: fc.constantFrom('succeeded', 'failed', 'cancelled', 'timed_out', 'exploded'),
            exitCode: fc.oneof(fc.integer({ min: -1, max: 255 }), fc.constant(null), jsonish),
            logBytes: intish,
            message: fc.string({ maxLength: 50 }),
          },
          { requiredKeys: ['type', 'jobId', 'attempt', 'outcome', 'exitCode', 'logBytes'] },
        ),
      },
    ) as fc.Arbitrary<Record<string, unknown>>;
  }

  const HELLO = {
    type: 'hello',
    agentVersion: '0.0.0-fuzz',
    host: { hostname: 'fuzz', os: 'linux', arch: 'x64', cpus: 1, memoryBytes: 1 },
    capabilities: { executors: ['shell'], maxJobs: 1, labels: {}, airgapped: false },
  };

  /** What the coordinator must do with each frame, by the protocol's parser. */
  type Expect = { close: number; code?: string } | { reply?: (m: Record<string, unknown>) => boolean; hello?: true };

  function judge(frame: Frame, greeted: boolean): Expect {
    if ('binary' in frame) {
      return frame.binary.length > MAX_WS_FRAME_BYTES ? { close: CloseCode.MessageTooBig } : { close: CloseCode.BadMessage, code: ErrorCode.MalformedMessage };
    }
    if (Buffer.byteLength(frame.text) > MAX_WS_FRAME_BYTES) return { close: CloseCode.MessageTooBig };
    const parsed = parseRunnerMessage(frame.text);
    if (!parsed.ok) return { close: CloseCode.BadMessage, code: parsed.code };
    const m = parsed.message;
    if (m.type !== 'hello' && !greeted) return { close: CloseCode.BadMessage, code: ErrorCode.HelloRequired };
    switch (m.type) {
      case 'hello':
        // A session says hello once: a second would redo its job reconciliation.
        if (greeted) return { close: CloseCode.BadMessage, code: ErrorCode.MalformedMessage };
        return { reply: (r) => r.type === 'welcome', hello: true };
      case 'heartbeat':
        return { reply: (r) => r.type === 'heartbeat_ack' && r.seq === m.seq };
      case 'token_confirm':
        return { reply: (r) => r.type === 'error' && r.code === ErrorCode.TokenUnknown };
      case 'log':
        return { reply: (r) => r.type === 'log_ack' && r.jobId === m.jobId && r.attempt === m.attempt };
      case 'result':
        return { reply: (r) => r.type === 'result_ack' && r.jobId === m.jobId && r.attempt === m.attempt && r.accepted === false };
      default:
        return {}; // accept, started, reject of an attempt it does not hold: fenced, nothing to say
    }
  }

  let probeSeq = 1_000_000_000;

  /** One connection: optional hello, the frames up to the first the coordinator must close on, then a probe heartbeat. */
  async function converse(frames: Frame[], greet: boolean): Promise<void> {
    const socket = await FuzzSocket.open(wsUrl(), headers(fx.fuzzRunner.token));
    if (!(socket instanceof FuzzSocket)) throw new Error(`fuzz runner refused at the upgrade: ${JSON.stringify(socket)}`);
    try {
      let greeted = false;
      if (greet) {
        socket.send({ text: JSON.stringify(HELLO) });
        await socket.until('welcome', (c) => c.messages.some((m) => m.type === 'welcome'));
        greeted = true;
        socket.conv.messages.length = 0;
      }
      const replies: ((m: Record<string, unknown>) => boolean)[] = [];
      let end: { close: number; code?: string } | undefined;
      if (greeted) {
        // Frames the session must survive first, then at most one it must close on: many inputs per connection.
        const fatal = frames.filter((f) => 'close' in judge(f, true));
        frames = [...frames.filter((f) => !fatal.includes(f)), ...fatal.slice(0, 1)];
      }
      for (const frame of frames) {
        const verdict = judge(frame, greeted);
        socket.send(frame);
        sent++;
        if ('close' in verdict) {
          end = verdict;
          break;
        }
        if (verdict.reply) replies.push(verdict.reply);
        if (verdict.hello) greeted = true;
      }
      if (end) {
        await socket.until(`close ${end.close}`, (c) => c.closeCode !== undefined);
        expect(socket.conv.closeCode).toBe(end.close);
        if (end.code) {
          const errors = socket.conv.messages.filter((m) => m.type === 'error' && m.code !== ErrorCode.TokenUnknown);
          expect(errors).toEqual([expect.objectContaining({ code: end.code, message: expect.any(String) })]);
        }
      } else {
        const seq = probeSeq++;
        socket.send({ text: JSON.stringify({ type: 'heartbeat', seq }) });
        replies.push((m) => m.type === 'heartbeat_ack' && m.seq === seq);
        // Every frame's answer arrives, each matched once; the session stays open.
        await socket.until('every answer', (c) => c.closeCode !== undefined || unanswered(replies, c.messages).length === 0);
        expect(socket.conv.closeCode).toBeUndefined();
        const stray = socket.conv.messages.filter((m) => m.type === 'error' && m.code !== ErrorCode.TokenUnknown);
        expect(stray).toEqual([]);
      }
      expect(socket.conv.garbled).toEqual([]);
      for (const m of socket.conv.messages.filter((x) => x.type === 'error')) expect(ERROR_CODES.has(m.code as string)).toBe(true);
    } finally {
      await socket.close();
    }
  }

  function unanswered(replies: ((m: Record<string, unknown>) => boolean)[], messages: Record<string, unknown>[]) {
    const left = [...messages];
    return replies.filter((match) => {
      const i = left.findIndex(match);
      if (i < 0) return true;
      left.splice(i, 1);
      return false;
    });
  }

  it(`answers ${INPUTS} random, mutated, replayed and out-of-order frames as the protocol says`, { timeout: 300_000 }, async () => {
    // Most connections say hello first; the rest test what is refused before it.
    const batch = fc.record({ frames: fc.array(frameArb(messages()), { minLength: BATCH, maxLength: BATCH }), greet: fc.constantFrom(true, true, true, true, false) });
    // CI-sized rounds of 20 connections, each round with its own seed, until the share is sent.
    while (sent < INPUTS) {
      await fc.assert(
        fc.asyncProperty(batch, async ({ frames, greet }) => converse(frames, greet)),
        { numRuns: 20, endOnFailure: true },
      );
      fx.good.check();
    }
  });

  it('answers deep JSON, huge strings, oversized and binary frames, before and after hello', { timeout: 60_000 }, async () => {
    for (const frame of specialFrames({ type: 'log', jobId: fx.knownJobIds()[0], attempt: 1, offset: 0, stream: 'stdout', data: 'x' })) {
      for (const greet of [true, false]) await converse([frame], greet);
    }
    // A log frame just under the limit is fine: stale (not this runner's job), acked, the session stays.
    const big = { type: 'log', jobId: fx.knownJobIds()[0], attempt: 1, offset: 0, stream: 'stdout', data: 'y'.repeat(MAX_WS_FRAME_BYTES - 1_000) };
    await converse([{ text: JSON.stringify(big) }], true);
    fx.good.check();
  });

  it("fences another runner's frames for a job it holds: no log byte, no result, no reject gets in", async () => {
    const victim = await SimRunner.start(fx.tc, 'victim', { name: 'victim' });
    try {
      const submitted = await fx.tc.api('POST', ROUTES.jobs, { body: { pool: 'victim', executor: { type: 'shell', command: ['true'] } } });
      const a = await victim.take();
      expect(a.jobId).toBe(submitted.body.id);
      victim.started(a);
      const intruder = [
        { type: 'log', jobId: a.jobId, attempt: a.attempt, offset: 0, stream: 'stdout', data: 'injected\n' },
        { type: 'reject', jobId: a.jobId, attempt: a.attempt, reason: 'not mine' },
        { type: 'result', jobId: a.jobId, attempt: a.attempt, outcome: 'failed', exitCode: 9, logBytes: 9 },
      ];
      await converse(intruder.map((m) => ({ text: JSON.stringify(m) })), true);
      expect((await victim.log(a, 0, 'real\n')).offset).toBe(5);
      expect((await victim.result(a, 'succeeded', 0, 5)).accepted).toBe(true);
      const job = (await fx.tc.api('GET', ROUTES.job(a.jobId))).body;
      expect(job).toMatchObject({ state: 'succeeded', attempt: 1, exitCode: 0, runnerId: victim.runnerId });
      const log = (await fx.tc.api('GET', `${ROUTES.jobLogs(a.jobId)}?offset=0`)).body as { data: string }[];
      expect(log.map((c) => c.data).join('')).toBe('real\n');
    } finally {
      victim.terminate();
    }
  });

  it('refuses upgrades with wrong, foreign or malformed credentials with a JSON error', { timeout: 60_000 }, async () => {
    const tokens = fc.oneof(
      fc.constantFrom(fx.adminToken, fx.other.adminToken, fx.other.submitterToken, fx.registrationToken, 'rbtk_run_abcdefgh12345678_' + 'x'.repeat(43)),
      fc.tuple(fc.constantFrom(fx.fuzzRunner.token, fx.other.runnerToken), fc.nat(), fc.string({ minLength: 1, maxLength: 2 })).map(
        ([t, at, junk]) => {
          const i = at % t.length;
          const mutated = t.slice(0, i) + junk + t.slice(i + 1);
          return mutated === t ? t + 'x' : mutated;
        },
      ),
      fc.string({ maxLength: 200 }).filter((s) => /^[\x21-\x7e]*$/.test(s)),
    );
    const cases = fc.record({
      token: fc.option(tokens, { nil: undefined }),
      version: fc.option(fc.oneof(fc.constantFrom('0', '2', '99', '1.0', ''), fc.stringMatching(/^[0-9a-z]{1,4}$/)), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(cases, async ({ token, version }) => {
        const h: Record<string, string> = {};
        if (token !== undefined) h.authorization = `Bearer ${token}`;
        if (version !== undefined) h[PROTOCOL_VERSION_HEADER] = version;
        const out = await FuzzSocket.open(wsUrl(), h);
        sent++;
        if (out instanceof FuzzSocket) {
          await out.close();
          throw new Error(`upgrade accepted with ${JSON.stringify(h)}`);
        }
        // The version is checked first (426), then the token (401).
        expect(out.status).toBe(version === String(PROTOCOL_VERSION) ? 401 : 426);
        const { error } = JSON.parse(out.body) as { error: { code: string; message: string } };
        expect(ERROR_CODES.has(error.code)).toBe(true);
        expect(error.message.length).toBeGreaterThan(5);
      }),
      { numRuns: 300 },
    );
  });
});
