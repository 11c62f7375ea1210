import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode, MAX_WS_FRAME_BYTES, parseSubmitterRequest, PROTOCOL_VERSION_HEADER, ROUTES } from '@rbtk/protocol';
import { frameArb, idArb, intish, jobSpecArb, shortString, specialFrames, type Frame } from './arbitraries.js';
import { ERROR_CODES, FUZZ_INPUTS, FuzzFixture } from './fuzz-fixture.js';
import { FuzzSocket } from './socket-client.js';

/** This file's share of the fuzz run, in frames. */
const INPUTS = Math.round(FUZZ_INPUTS * 0.2);
const BATCH = 40;

/*
 * Random and mutated requests on the submitter socket (/v1/jobs/ws). The
 * protocol's parser is the oracle: a frame it refuses gets an error with that
 * code and close 4400 (1009 over 1 MiB); every request it accepts is answered
 * with its reqId (submitted, ack or a clear error) and the socket stays open —
 * including submits that no pool could take, watches and cancels of jobs of
 * another project, and replayed reqIds and idempotency keys.
 */
describe('the submitter socket under random and mutated requests', () => {
  let fx: FuzzFixture;
  let sent = 0;

  beforeAll(async () => {
    fx = await FuzzFixture.start();
  });

  afterAll(async () => {
    const good = fx.good.check();
    console.log(`submitter-socket fuzz: ${sent} frames; meanwhile the good runner completed ${good.completed} jobs`);
    await fx.stop();
  });

  const wsUrl = (query = '') => fx.url.replace(/^http/, 'ws') + ROUTES.jobsSocket + query;

  function requests(): fc.Arbitrary<Record<string, unknown>> {
    const reqId = fc.oneof(fc.constantFrom('r1', 'r2', 'same'), fc.string({ minLength: 1, maxLength: 70 }));
    const jobId = idArb(fx.bystanderJobIds());
    return fc.oneof(
      { weight: 4, arbitrary: fc.record({ type: fc.constant('submit'), reqId, spec: jobSpecArb(['fuzz', 'theirs', 'nope']) }) },
      { weight: 2, arbitrary: fc.record({ type: fc.constant('watch'), reqId, jobId, fromOffset: intish }, { requiredKeys: ['type', 'reqId', 'jobId'] }) },
      { weight: 1, arbitrary: fc.record({ type: fc.constant('unwatch'), reqId, jobId }) },
      { weight: 2, arbitrary: fc.record({ type: fc.constant('cancel'), reqId, jobId }) },
      { weight: 1, arbitrary: fc.record({ type: fc.constantFrom('result', 'hello', 'heartbeat'), reqId, jobId: shortString }) },
    ) as fc.Arbitrary<Record<string, unknown>>;
  }

  type Verdict = { close: number; code?: string } | { reqId: string };

  function judge(frame: Frame): Verdict {
    if ('binary' in frame) {
      return frame.binary.length > MAX_WS_FRAME_BYTES ? { close: CloseCode.MessageTooBig } : { close: CloseCode.BadMessage, code: ErrorCode.MalformedMessage };
    }
    if (Buffer.byteLength(frame.text) > MAX_WS_FRAME_BYTES) return { close: CloseCode.MessageTooBig };
    const parsed = parseSubmitterRequest(frame.text);
    return parsed.ok ? { reqId: parsed.message.reqId } : { close: CloseCode.BadMessage, code: parsed.code };
  }

  /** The token a connection uses, and the project it asks for. */
  const identities = () => [
    { token: fx.adminToken, query: '' },
    { token: fx.other.adminToken, query: '' },
    { token: fx.other.submitterToken, query: '?project=other' },
  ];

  async function converse(frames: Frame[], who: number): Promise<void> {
    const { token, query } = identities()[who % 3]!;
    const socket = await FuzzSocket.open(wsUrl(query), { authorization: `Bearer ${token}` });
    if (!(socket instanceof FuzzSocket)) throw new Error(`submitter refused at the upgrade: ${JSON.stringify(socket)}`);
    try {
      const fatal = frames.filter((f) => 'close' in judge(f));
      const ordered = [...frames.filter((f) => !fatal.includes(f)), ...fatal.slice(0, 1)];
      const waiting: string[] = [];
      let end: { close: number; code?: string } | undefined;
      for (const frame of ordered) {
        const verdict = judge(frame);
        socket.send(frame);
        sent++;
        if ('close' in verdict) end = verdict;
        else waiting.push(verdict.reqId);
      }
      // Each accepted request is answered with its reqId before any close.
      const answered = (c: { messages: Record<string, unknown>[] }) => {
        const left = c.messages.filter((m) => ['submitted', 'ack', 'error'].includes(m.type as string) && 'reqId' in m).map((m) => m.reqId);
        return waiting.every((id) => {
          const i = left.indexOf(id);
          if (i < 0) return false;
          left.splice(i, 1);
          return true;
        });
      };
      await socket.until('an answer to every request', (c) => answered(c) && (!end || c.closeCode !== undefined), 10_000);
      if (end) {
        expect(socket.conv.closeCode).toBe(end.close);
        if (end.code) {
          expect(socket.conv.messages.filter((m) => m.type === 'error' && !('reqId' in m))).toEqual([
            expect.objectContaining({ code: end.code, message: expect.any(String) }),
          ]);
        }
      } else {
        expect(socket.conv.closeCode).toBeUndefined();
      }
      expect(socket.conv.garbled).toEqual([]);
      for (const m of socket.conv.messages.filter((x) => x.type === 'error')) {
        expect(ERROR_CODES.has(m.code as string), JSON.stringify(m)).toBe(true);
        expect(m.code).not.toBe(ErrorCode.Internal);
      }
    } finally {
      await socket.close();
    }
  }

  it(`answers ${INPUTS} random, mutated and replayed requests with their reqId or a close code`, { timeout: 300_000 }, async () => {
    const batch = fc.record({ frames: fc.array(frameArb(requests()), { minLength: BATCH, maxLength: BATCH }), who: fc.nat(2) });
    while (sent < INPUTS) {
      await fc.assert(fc.asyncProperty(batch, async ({ frames, who }) => converse(frames, who)), { numRuns: 20, endOnFailure: true });
      fx.good.check();
    }
  });

  it('answers deep JSON, huge strings, oversized and binary frames', { timeout: 60_000 }, async () => {
    for (const frame of specialFrames({ type: 'watch', reqId: 'r1', jobId: fx.fuzzJobId })) await converse([frame], 0);
    fx.good.check();
  });

  it('answers a submit taken before a malformed frame, then closes 4400', async () => {
    const socket = (await FuzzSocket.open(wsUrl(), { authorization: `Bearer ${fx.adminToken}` })) as FuzzSocket;
    socket.send({ text: JSON.stringify({ type: 'submit', reqId: 'before', spec: { pool: 'fuzz', executor: { type: 'shell', command: ['true'] } } }) });
    socket.send({ text: '{"type":"submit",' });
    await socket.closed;
    expect(socket.conv.closeCode).toBe(CloseCode.BadMessage);
    const submitted = socket.conv.messages.find((m) => m.type === 'submitted' && m.reqId === 'before') as { job: { id: string } } | undefined;
    expect(submitted).toBeDefined();
    expect(socket.conv.messages).toContainEqual(expect.objectContaining({ type: 'error', code: ErrorCode.MalformedMessage }));
    expect((await fx.tc.api('GET', ROUTES.job(submitted!.job.id))).status).toBe(200);
  });

  it("never shows one project's jobs to another project's tokens", async () => {
    const mine = (await fx.tc.api('POST', ROUTES.jobs, { body: { pool: 'fuzz', executor: { type: 'shell', command: ['true'] } } })).body;
    const watch = (jobId: string) => ({ text: JSON.stringify({ type: 'watch', reqId: `w-${jobId}`, jobId }) });
    for (const who of [1, 2]) {
      const { token, query } = identities()[who]!;
      const socket = (await FuzzSocket.open(wsUrl(query), { authorization: `Bearer ${token}` })) as FuzzSocket;
      socket.send(watch(mine.id));
      socket.send({ text: JSON.stringify({ type: 'cancel', reqId: 'c', jobId: mine.id }) });
      await socket.until('two answers', (c) => c.messages.length >= 2);
      expect(socket.conv.messages).toEqual([
        expect.objectContaining({ type: 'error', code: ErrorCode.NotFound }),
        expect.objectContaining({ type: 'error', code: ErrorCode.NotFound }),
      ]);
      await socket.close();
    }
    // And a project token cannot ask for another project at the upgrade.
    const refused = await FuzzSocket.open(wsUrl('?project=default'), { authorization: `Bearer ${fx.other.submitterToken}` });
    expect(refused).toMatchObject({ status: 403 });
    const bad = await FuzzSocket.open(wsUrl(), { authorization: `Bearer ${fx.other.runnerToken}`, [PROTOCOL_VERSION_HEADER]: '1' });
    expect(bad).toMatchObject({ status: 401 });
    // The cancel above did not reach it.
    expect((await fx.tc.api('GET', ROUTES.job(mine.id))).body.state).toBe('queued');
  });
});
