import { connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_HTTP_BODY_BYTES, PROTOCOL_VERSION_HEADER } from '@rbtk/protocol';
import { ROUTES_TABLE } from '../../packages/coordinator/src/http/server.js';
import { deepJson, deepObject, idArb, jobSpecArb, jsonish, mutate, shortString } from './arbitraries.js';
import { ERROR_CODES, FUZZ_INPUTS, FuzzFixture } from './fuzz-fixture.js';

/** This file's share of the fuzz run, in requests. */
const INPUTS = Math.round(FUZZ_INPUTS * 0.3);
const CONCURRENT = 25;

interface FuzzRequest {
  method: string;
  path: string;
  query: [string, string][];
  auth: number;
  contentType?: string;
  version?: string;
  body?: string;
}

/*
 * Random and mutated requests against every route of ROUTES_TABLE (and paths
 * and methods that are none): wrong and foreign tokens, junk and mutated
 * bodies, wrong types, huge and deep JSON, bodies over the limit, bad query
 * parameters. Each must be answered without a 500, and every refusal with a
 * JSON error whose code is a known one and whose message says something,
 * while the good runner's jobs keep completing.
 */
describe('every REST route under random and mutated requests', () => {
  let fx: FuzzFixture;
  let sent = 0;
  const statuses = new Map<number, number>();

  beforeAll(async () => {
    fx = await FuzzFixture.start();
  });

  afterAll(async () => {
    const good = fx.good.check();
    const seen = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ');
    console.log(`rest fuzz: ${sent} requests (${seen}); meanwhile the good runner completed ${good.completed} jobs`);
    await fx.stop();
  });

  /** Tokens to try: none, each kind, another project's, and junk. */
  const tokens = () => [
    undefined,
    fx.adminToken,
    fx.other.adminToken,
    fx.other.submitterToken,
    fx.other.runnerToken,
    fx.registrationToken,
    'rbtk_api_abcdefgh12345678_' + 'y'.repeat(43),
    'garbage',
    fx.adminToken.slice(0, -1) + (fx.adminToken.endsWith('A') ? 'B' : 'A'),
  ];

  /** Bodies that fit the routes, to be sent as they are or mutated. */
  function bodyArb(): fc.Arbitrary<Record<string, unknown>> {
    return fc.oneof(
      fc.record({ name: fc.oneof(fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/), shortString), type: fc.constantFrom('self-hosted', 'hosted', 'cloud'), tags: fc.dictionary(fc.stringMatching(/^[a-z]{1,3}$/), shortString, { maxKeys: 2 }), airgapped: fc.boolean() }, { requiredKeys: [] }),
      fc.record({ ttl: fc.constantFrom('1h', '0s', '-1s', '99999999d', 'x'), uses: fc.oneof(fc.integer(), fc.constant(null)) }, { requiredKeys: [] }),
      fc.record({ name: shortString, labels: fc.dictionary(shortString, shortString, { maxKeys: 2 }), airgapped: fc.boolean(), agentVersion: shortString }, { requiredKeys: [] }),
      fc.record({ role: fc.constantFrom('admin', 'submitter', 'root'), name: shortString }, { requiredKeys: [] }),
      jobSpecArb(['fuzz', 'theirs', 'nope']),
    ) as fc.Arbitrary<Record<string, unknown>>;
  }

  function requestArb(): fc.Arbitrary<FuzzRequest> {
    const segment = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom('fuzz', 'theirs', 'nope', 'other', 'default', fx.fuzzRunner.id, fx.other.runnerId, ...fx.bystanderJobIds()) },
      { weight: 2, arbitrary: idArb(fx.bystanderJobIds()).map(encodeURIComponent) },
      { weight: 1, arbitrary: fc.constantFrom('%', '%zz', '%00', '..', '%2F', 'x'.repeat(5_000), ':name', '') },
    );
    const route = fc.tuple(fc.constantFrom(...ROUTES_TABLE), fc.array(segment, { minLength: 3, maxLength: 3 })).map(([r, values]) => {
      let i = 0;
      // Route paths are built with ROUTES.x(':id'), which percent-encodes the colon.
      return { method: r.method as string, path: decodeURIComponent(r.path).replace(/:[a-zA-Z]+/g, () => values[i++]!) };
    });
    const path = fc.oneof(
      { weight: 8, arbitrary: route },
      { weight: 1, arbitrary: fc.tuple(route, fc.constantFrom('/', '/extra', '//', '/..', '?')).map(([r, tail]) => ({ ...r, path: r.path + tail })) },
      { weight: 1, arbitrary: fc.webPath().map((p) => ({ method: 'GET', path: p.startsWith('/') ? p : `/${p}` })) },
    );
    const query = fc.array(
      fc.tuple(
        fc.constantFrom('project', 'pool', 'state', 'limit', 'offset', 'resourceType', 'x'),
        fc.oneof(fc.constantFrom('other', 'default', 'nope', 'fuzz', 'queued', 'runner', '0', '1', '-1', '1000', '1001', '1e3', '9999999999999999999', ''), shortString),
      ),
      { maxLength: 3 },
    );
    const body = fc.oneof(
      { weight: 3, arbitrary: fc.constant(undefined) },
      { weight: 6, arbitrary: bodyArb().map((b) => JSON.stringify(b)) },
      { weight: 4, arbitrary: fc.tuple(bodyArb(), fc.record({ kind: fc.constantFrom('drop', 'set', 'add', 'truncate', 'splice', 'wrap'), key: fc.nat(), at: fc.nat(), value: jsonish, junk: fc.constantFrom('"', '}', '\\', '\u0000') })).map(([b, m]) => mutate(b, m as never)) },
      { weight: 2, arbitrary: jsonish.map((v) => JSON.stringify(v)) },
      { weight: 1, arbitrary: fc.string({ maxLength: 100, unit: 'binary' }) },
    );
    return fc.record({
      route: path,
      otherMethod: fc.oneof(
        { weight: 6, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', 'HEAD') },
      ),
      query,
      // The admin token often, so requests get past authentication into the handlers.
      auth: fc.oneof({ weight: 5, arbitrary: fc.constant(1) }, { weight: 4, arbitrary: fc.nat(tokens().length - 1) }),
      contentType: fc.option(fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1'), { nil: undefined }),
      version: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('1', '2', 'x') }),
      body,
    }).map(({ route: r, otherMethod, ...rest }) => ({ ...rest, method: otherMethod ?? r.method, path: r.path }));
  }

  async function send(r: FuzzRequest): Promise<void> {
    const headers: Record<string, string> = {};
    const token = tokens()[r.auth];
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    if (r.contentType) headers['content-type'] = r.contentType;
    if (r.version) headers[PROTOCOL_VERSION_HEADER] = r.version;
    const qs = r.query.length > 0 ? `?${new URLSearchParams(r.query)}` : '';
    const withBody = r.body !== undefined && r.method !== 'GET' && r.method !== 'HEAD';
    const res = await fetch(fx.url + r.path + qs, { method: r.method, headers, body: withBody ? r.body : undefined });
    const text = await res.text();
    sent++;
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    const what = `${r.method} ${r.path}${qs} → ${res.status} ${text.slice(0, 300)}`;
    expect(res.status, what).not.toBe(500);
    expect(res.status, what).toBeLessThan(600);
    if (res.status >= 400 && r.method !== 'HEAD') {
      expect(res.headers.get('content-type'), what).toMatch(/^application\/json/);
      const { error } = JSON.parse(text) as { error: { code: string; message: string } };
      expect(ERROR_CODES.has(error.code), what).toBe(true);
      expect(error.message.length, what).toBeGreaterThan(5);
    }
  }

  it(`answers ${INPUTS} random and mutated requests with a clear JSON error or success, never 500`, { timeout: 300_000 }, async () => {
    const batch = fc.array(requestArb(), { minLength: CONCURRENT, maxLength: CONCURRENT });
    while (sent < INPUTS) {
      await fc.assert(fc.asyncProperty(batch, async (requests) => void (await Promise.all(requests.map(send)))), {
        numRuns: 20,
        endOnFailure: true,
      });
      fx.good.check();
    }
  });

  it('answers malformed HTTP (request lines, headers, lengths, truncation) with a 4xx, in JSON unless a response was under way', { timeout: 60_000 }, async () => {
    const head = fc.record({
      method: fc.constantFrom('GET', 'POST', 'G ET', '', 'POST\u0000'),
      path: fc.oneof(fc.constantFrom('/v1/pools', '/healthz', '/v1/jobs'), fc.string({ maxLength: 20 })),
      version: fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/9.9', 'HTTX/1.1', ''),
      headers: fc.array(fc.tuple(fc.constantFrom('Host', 'Content-Length', 'Transfer-Encoding', 'Authorization', 'X'), fc.constantFrom('x', '-1', 'abc', '10', 'chunked', `Bearer ${fx.adminToken}`, 'a'.repeat(20_000), 'a\u0000b')), { maxLength: 4 }),
      body: fc.string({ maxLength: 30 }),
      cut: fc.option(fc.nat(), { freq: 3 }),
    });
    await fc.assert(
      fc.asyncProperty(head, async (h) => {
        let raw = `${h.method} ${h.path} ${h.version}\r\n${h.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${h.body}`;
        if (h.cut !== null) raw = raw.slice(0, h.cut % (raw.length + 1));
        const answer = await rawExchange(raw);
        sent++;
        if (raw === '') return;
        const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1]);
        expect(status, `${JSON.stringify(raw.slice(0, 200))} → ${JSON.stringify(answer.slice(0, 300))}`).toBeGreaterThanOrEqual(200);
        expect(status).not.toBe(500);
        const [headers, body = ''] = answer.split('\r\n\r\n', 2);
        if (/content-type: application\/json/i.test(headers!) && status >= 400) {
          const { error } = JSON.parse(body.split('\r\n\r\n')[0]!.split('HTTP/1.1')[0]!) as { error: { code: string; message: string } };
          expect(ERROR_CODES.has(error.code)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
    fx.good.check();
  });

  /** Writes raw bytes on a fresh connection, half-closes, and returns everything the server sent. */
  function rawExchange(raw: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const url = new URL(fx.url);
      const socket = connect(Number(url.port), url.hostname);
      let out = '';
      socket.on('data', (d) => (out += d.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(out));
      socket.end(Buffer.from(raw, 'latin1'));
      setTimeout(() => reject(new Error(`no close for ${JSON.stringify(raw.slice(0, 100))}`)), 10_000).unref();
    });
  }

  it('answers deep JSON, huge strings and oversized bodies on every route that reads a body', { timeout: 60_000 }, async () => {
    const bodies = [
      deepJson(),
      deepObject(),
      JSON.stringify({ name: 'x'.repeat(500_000) }),
      JSON.stringify({ pool: 'fuzz', executor: { type: 'shell', command: Array.from({ length: 20_000 }, () => 'a') } }),
      ' '.repeat(MAX_HTTP_BODY_BYTES + 1),
    ];
    for (const route of ROUTES_TABLE.filter((r) => r.method === 'POST')) {
      const path = decodeURIComponent(route.path).replace(/:[a-zA-Z]+/g, 'fuzz');
      for (const body of bodies) {
        for (const auth of [1, 5]) await send({ method: 'POST', path, query: [], auth, contentType: 'application/json', body });
      }
    }
    fx.good.check();
  });
});
