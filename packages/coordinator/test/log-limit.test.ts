import { ROUTES } from '@rbtk/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { assignTo } from '../src/jobs/decisions.js';
import { truncationMarker, utf8Prefix } from '../src/store/log-limit.js';
import { type StoreWithPool, storeWithPool } from './store-helpers.js';
import { jobsFixture, type SimRunner, SubmitterSocket } from './jobs-helpers.js';

const LIMIT = 1000;
const CHUNK = 300;

/** The attempt's whole stored log, read page by page as a client would. */
async function storedLog(get: (route: string) => Promise<{ body: { offset: number; data: string; stream: string }[] }>, id: string) {
  const chunks: { offset: number; data: string; stream: string }[] = [];
  for (let offset = 0; ; ) {
    const page = (await get(`${ROUTES.jobLogs(id)}?offset=${offset}`)).body;
    if (page.length === 0) return chunks;
    chunks.push(...page);
    const last = page.at(-1)!;
    offset = last.offset + Buffer.byteLength(last.data, 'utf8');
  }
}

describe('the per-attempt log limit (--max-log-bytes)', () => {
  const { start, runner, submit, job, tc } = jobsFixture();
  const sockets: SubmitterSocket[] = [];
  afterEach(() => {
    for (const s of sockets.splice(0)) s.ws.terminate();
  });

  /** Sends `count` chunks of CHUNK bytes (a different letter each) from `from`; the acks, in order. */
  async function write(r: SimRunner, a: { jobId: string; attempt: number }, from: number, count: number) {
    const sent: string[] = [];
    const acks: number[] = [];
    for (let i = 0; i < count; i++) {
      const data = String.fromCharCode(97 + ((from / CHUNK + i) % 26)).repeat(CHUNK);
      sent.push(data);
      acks.push((await r.log(a, from + i * CHUNK, data)).offset);
    }
    return { sent: sent.join(''), acks };
  }

  it('keeps the first N bytes and one marker, acks every byte sent, and leaves the job to run and succeed', async () => {
    await start({ maxLogBytes: LIMIT });
    const r = await runner('capped');
    const id = await submit('capped');
    const watcher = await SubmitterSocket.open(tc());
    sockets.push(watcher);
    watcher.request({ type: 'watch', jobId: id });
    const a = await r.take();
    r.started(a);

    // 6 × 300 bytes: the fourth chunk crosses the limit, the last two are past it.
    const { sent, acks } = await write(r, a, 0, 6);
    expect(acks).toEqual([300, 600, 900, 1200, 1500, 1800]);
    // Still running: the limit cuts the log, not the job.
    expect((await job(id)).state).toBe('running');
    expect(await r.result(a, 'succeeded', 0, sent.length)).toMatchObject({ accepted: true });

    const marker = truncationMarker(LIMIT, LIMIT);
    expect(marker).toMatch(/log truncated at 1000 bytes/);
    const done = await job(id);
    expect(done).toMatchObject({ state: 'succeeded', exitCode: 0, logBytes: LIMIT + Buffer.byteLength(marker) });
    const stored = await storedLog((route) => tc().api('GET', route), id);
    expect(stored.map((c) => c.data).join('')).toBe(sent.slice(0, LIMIT) + marker);
    expect(stored.at(-1)).toMatchObject({ offset: LIMIT, stream: 'stderr', data: marker });
    expect(stored.at(-2)).toMatchObject({ offset: 900, stream: 'stdout', data: sent.slice(900, LIMIT) });

    // A watcher saw the same bytes live: the part below the limit, then the marker, nothing after it.
    const live: string[] = [];
    for (;;) {
      const e = await watcher.next((m) => m.type === 'log' || (m.type === 'job' && m.job.state === 'succeeded'));
      if (e.type !== 'log') break;
      live.push(e.data);
    }
    expect(live.join('')).toBe(sent.slice(0, LIMIT) + marker);
  });

  it('acks a resend past the limit after a reconnect, so the runner can drop its spool', async () => {
    await start({ maxLogBytes: LIMIT });
    const r = await runner('resend');
    const id = await submit('resend');
    const a = await r.take();
    r.started(a);
    await write(r, a, 0, 4); // to 1200: cut at 1000
    // A new session (the acks of the old one lost, say): the runner resends from its last acknowledged byte.
    r.terminate();
    await r.connect([{ jobId: id, attempt: a.attempt, finished: false }]);
    const again = await write(r, a, 900, 3);
    expect(again.acks).toEqual([1200, 1500, 1800]);
    // Nothing new stored: the log still ends with its one marker.
    const stored = await storedLog((route) => tc().api('GET', route), id);
    expect(stored.filter((c) => c.data.includes('log truncated'))).toHaveLength(1);
    expect((await job(id)).logBytes).toBe(LIMIT + Buffer.byteLength(truncationMarker(LIMIT, LIMIT)));
  });

  it('0 means no limit', async () => {
    await start({ maxLogBytes: 0 });
    const r = await runner('unlimited');
    const id = await submit('unlimited');
    const a = await r.take();
    r.started(a);
    const { sent, acks } = await write(r, a, 0, 5);
    expect(acks.at(-1)).toBe(1500);
    expect((await storedLog((route) => tc().api('GET', route), id)).map((c) => c.data).join('')).toBe(sent);
  });
});

describe('the log limit in the store', () => {
  let fixture: StoreWithPool;
  afterEach(() => fixture.close());

  it('cuts on a character boundary, and an attempt cut under one limit stays cut under another (a restart)', async () => {
    fixture = storeWithPool();
    const jobs = fixture.store.jobs;
    const id = await fixture.submit();
    await jobs.transition([{ jobId: id, decide: assignTo('r1', 1) }], 1);
    const chunk = (offset: number, data: string) => ({ jobId: id, attempt: 1, offset, stream: 'stdout' as const, data });
    // 'ü' is 2 bytes: a limit of 5 falls inside the third one, which is left out whole.
    const cut = await jobs.appendLog(chunk(0, 'üüüü'), 'r1', 5);
    const marker = truncationMarker(4, 5);
    expect(cut).toMatchObject({
      kind: 'truncated',
      length: 8,
      appended: [
        { offset: 0, size: 4, stream: 'stdout', data: 'üü' },
        { offset: 4, stream: 'stderr', data: marker },
      ],
    });
    const length = 4 + Buffer.byteLength(marker);
    expect((await jobs.get(id))!.logBytes).toBe(length);
    // The same limit: everything after is acked to its end and dropped.
    expect(await jobs.appendLog(chunk(8, 'more'), 'r1', 5)).toEqual({ kind: 'truncated', length: 12, appended: [] });
    // A higher limit, or none, after a restart: the runner's offsets (12) run past the stored length,
    // and the marker at the end says why: still acked and dropped, not answered as a gap forever.
    expect(await jobs.appendLog(chunk(12, 'again'), 'r1', 10_000)).toEqual({ kind: 'truncated', length: 17, appended: [] });
    expect(await jobs.appendLog(chunk(17, 'and again'), 'r1')).toEqual({ kind: 'truncated', length: 26, appended: [] });
    expect((await jobs.get(id))!.logBytes).toBe(length);
    // Fencing still comes first.
    expect(await jobs.appendLog(chunk(26, 'x'), 'r2', 5)).toEqual({ kind: 'stale' });
  });

  it('a log that ends exactly at the limit is not cut: only a byte past it is', async () => {
    fixture = storeWithPool();
    const jobs = fixture.store.jobs;
    const id = await fixture.submit();
    await jobs.transition([{ jobId: id, decide: assignTo('r1', 1) }], 1);
    const chunk = (offset: number, data: string) => ({ jobId: id, attempt: 1, offset, stream: 'stdout' as const, data });
    expect(await jobs.appendLog(chunk(0, 'abcde'), 'r1', 5)).toEqual({ kind: 'stored', length: 5, appended: true });
    expect(await jobs.appendLog(chunk(5, 'f'), 'r1', 5)).toMatchObject({
      kind: 'truncated',
      length: 6,
      appended: [{ offset: 5, stream: 'stderr', data: truncationMarker(5, 5) }],
    });
  });

  it('utf8Prefix never splits a character', () => {
    expect(utf8Prefix('aé€😀', 1)).toBe('a');
    expect(utf8Prefix('aé€😀', 2)).toBe('a');
    expect(utf8Prefix('aé€😀', 3)).toBe('aé');
    expect(utf8Prefix('aé€😀', 5)).toBe('aé');
    expect(utf8Prefix('aé€😀', 6)).toBe('aé€');
    expect(utf8Prefix('aé€😀', 9)).toBe('aé€');
    expect(utf8Prefix('aé€😀', 10)).toBe('aé€😀');
    expect(utf8Prefix('abc', 0)).toBe('');
  });
});
