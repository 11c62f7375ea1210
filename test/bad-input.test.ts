import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parse as parseYaml } from 'yaml';
import { CloseCode, PROTOCOL_VERSION_HEADER, ROUTES, RunnerConfig, type Runner } from '@rbtk/protocol';
import { Fleet } from './helpers/fleet.js';
import { waitFor } from './helpers/processes.js';

interface Outcome {
  status?: number;
  body?: string;
  messages: { type: string; code?: string; message?: string }[];
  closeCode?: number;
}

/** Opens the runner socket, sends frames after the upgrade, and reports everything that came back. */
function talk(url: string, headers: Record<string, string>, frames: (string | Buffer)[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const out: Outcome = { messages: [] };
    const ws = new WebSocket(url.replace(/^http/, 'ws') + ROUTES.runnerSocket, { headers });
    ws.on('open', () => frames.forEach((f) => ws.send(f)));
    ws.on('message', (data) => out.messages.push(JSON.parse(data.toString())));
    ws.on('close', (code) => resolve({ ...out, closeCode: code }));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ ...out, status: res.statusCode, body }));
    });
    ws.on('error', (err) => (out.closeCode === undefined ? reject(err) : undefined));
    setTimeout(() => reject(new Error('no close within 10 s')), 10_000).unref();
  });
}

describe('bad input never stops the coordinator from serving good runners', () => {
  let fleet: Fleet;
  let goodId: string;
  let junkToken: string;

  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '3s', heartbeatInterval: '200ms' });
    expect((await fleet.rbtk(['pool', 'create', 'p'])).code).toBe(0);
    goodId = await fleet.registerRunner('p', 'good');
    fleet.startRunner('good');
    await fleet.registerRunner('p', 'junk');
    junkToken = RunnerConfig.parse(parseYaml(await readFile(fleet.configPath('junk'), 'utf8'))).token;
    await waitFor('good runner ONLINE', async () => (await fleet.runnerStatus(goodId)) === 'ONLINE');
  });

  afterAll(async () => {
    // After all of it, the good runner is still heartbeating.
    const before = (await fleet.rbtkJson<Runner>(['runner', 'show', goodId])).lastHeartbeatAt!;
    await waitFor('a fresh heartbeat', async () => {
      const r = await fleet.rbtkJson<Runner>(['runner', 'show', goodId]);
      return r.status === 'ONLINE' && r.connected && Date.parse(r.lastHeartbeatAt!) > Date.parse(before);
    });
    expect(fleet.coordinator.running).toBe(true);
    expect(await fleet.close()).toEqual([]);
  });

  const auth = () => ({ authorization: `Bearer ${junkToken}`, [PROTOCOL_VERSION_HEADER]: '1' });

  it('answers a frame that is not JSON with an error and close code 4400', async () => {
    const out = await talk(fleet.url, auth(), ['{"type":"hello",']);
    expect(out.messages).toContainEqual(expect.objectContaining({ type: 'error', code: 'malformed_message' }));
    expect(out.closeCode).toBe(CloseCode.BadMessage);
  });

  it('names the expected types for an unknown message type', async () => {
    const out = await talk(fleet.url, auth(), [JSON.stringify({ type: 'rm -rf', seq: 1 })]);
    const error = out.messages.find((m) => m.type === 'error');
    expect(error).toMatchObject({ code: 'unknown_message' });
    expect(error?.message).toContain('hello');
    expect(out.closeCode).toBe(CloseCode.BadMessage);
  });

  it('refuses a message of the wrong shape', async () => {
    const out = await talk(fleet.url, auth(), [JSON.stringify({ type: 'heartbeat', seq: -4 })]);
    expect(out.messages.find((m) => m.type === 'error')).toBeDefined();
    expect(out.closeCode).toBe(CloseCode.BadMessage);
  });

  it('closes an oversized frame with 1009', async () => {
    const out = await talk(fleet.url, auth(), [Buffer.alloc(2 * 1024 * 1024, 'a')]);
    expect(out.closeCode).toBe(CloseCode.MessageTooBig);
  });

  it('refuses wrong and foreign tokens at the upgrade with 401', async () => {
    for (const token of ['nope', 'rbtk_run_abcdefgh12345678_' + 'x'.repeat(43), fleet.adminToken]) {
      const out = await talk(fleet.url, { authorization: `Bearer ${token}`, [PROTOCOL_VERSION_HEADER]: '1' }, []);
      expect(out.status, token.slice(0, 12)).toBe(401);
      expect(JSON.parse(out.body!).error.message).toBeTruthy();
    }
    const none = await talk(fleet.url, { [PROTOCOL_VERSION_HEADER]: '1' }, []);
    expect(none.status).toBe(401);
  });

  it('refuses another protocol version, naming both', async () => {
    const out = await talk(fleet.url, { ...auth(), [PROTOCOL_VERSION_HEADER]: '99' }, []);
    expect(out.status).toBe(426);
    const { error } = JSON.parse(out.body!);
    expect(error.code).toBe('protocol_mismatch');
    expect(error.message).toMatch(/\b1\b/);
    expect(error.message).toMatch(/\b99\b/);
  });

  it('answers malformed REST bodies, oversized bodies and wrong tokens with clear errors', async () => {
    const post = (body: string | Buffer, token = fleet.adminToken) =>
      fetch(`${fleet.url}${ROUTES.pools}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body,
      });
    const cases: [Response, number, string][] = [
      [await post('{"name":'), 400, 'invalid_json'],
      [await post(JSON.stringify({ name: 'Bad Name!' })), 400, 'bad_request'],
      [await post(JSON.stringify({ name: 'ok', colour: 'red' })), 400, 'bad_request'],
      [await post(Buffer.alloc(2 * 1024 * 1024, ' ')), 413, 'body_too_large'],
      [await post('{}', 'rbtk_api_abcdefgh12345678_' + 'y'.repeat(43)), 401, 'unauthorized'],
      [await fetch(`${fleet.url}/v1/nowhere`, { headers: { authorization: `Bearer ${fleet.adminToken}` } }), 404, 'not_found'],
    ];
    for (const [res, status, code] of cases) {
      expect(res.status).toBe(status);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe(code);
      expect(body.error.message.length).toBeGreaterThan(5);
    }
  });
});
