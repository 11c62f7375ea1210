import { readFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parse as parseYaml } from 'yaml';
import { EXIT_REVOKED, PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, ROUTES, RunnerConfig, type AuditEntry } from '@rbtk/protocol';
import { Fleet } from './helpers/fleet.js';
import { waitFor } from './helpers/processes.js';

async function readToken(path: string): Promise<string> {
  return RunnerConfig.parse(parseYaml(await readFile(path, 'utf8'))).token;
}

/** Opens the runner socket with a given token; resolves with the HTTP status of a refusal, or 101. */
function upgradeStatus(url: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + ROUTES.runnerSocket, {
      headers: { authorization: `Bearer ${token}`, [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) },
    });
    ws.on('open', () => {
      ws.close();
      resolve({ status: 101, body: '' });
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('error', reject);
  });
}

describe('token rotation', () => {
  let fleet: Fleet;

  beforeEach(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({ offlineAfter: '2s', heartbeatInterval: '100ms', tokenRotation: '0s' });
    expect((await fleet.rbtk(['pool', 'create', 'rot'])).code).toBe(0);
  });

  afterEach(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  it('revokes a runner whose superseded token shows up again, with an audit row that says why', async () => {
    const id = await fleet.registerRunner('rot', 'victim');
    const path = fleet.configPath('victim');
    const stolen = await readToken(path);
    const agent = fleet.startRunner('victim');
    // Two rotations after the first: the registration token is now certainly superseded.
    const seen = new Set([stolen]);
    await waitFor('two rotations', async () => {
      seen.add(await readToken(path));
      return seen.size >= 3;
    });

    const refused = await upgradeStatus(fleet.url, stolen);
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'token_revoked' } });

    // The legitimate agent is cut off too: the theft could have been either side.
    expect((await agent.exited).code).toBe(EXIT_REVOKED);
    expect((await fleet.rbtk(['runner', 'show', id])).code).toBe(4);
    const audit = await fleet.rbtkJson<AuditEntry[]>(['audit', '--resource-type', 'runner']);
    const row = audit.find((a) => a.action === 'runner.revoke' && a.resourceId === id);
    expect(row).toBeDefined();
    expect(row!.actor).toBe('system');
    expect(JSON.stringify(row!.details)).toContain('superseded token reused');
    expect(JSON.stringify(audit)).not.toContain(stolen);
  });

  it('never locks a runner out when SIGKILLed at random moments while its token rotates', async () => {
    const iterations = Number(process.env.RBTK_CRASH_ITERATIONS ?? 200);
    const id = await fleet.registerRunner('rot', 'crashy');
    const path = fleet.configPath('crashy');
    const tokens = new Set<string>();
    for (let i = 0; i < iterations; i++) {
      const agent = fleet.startRunner('crashy');
      // Back ONLINE each time: the coordinator accepted whatever token the file held.
      await agent.waitForLog((l) => l.msg === 'connected', 15_000);
      // Die anywhere in the next few heartbeats, rotations and fsyncs included.
      await new Promise((r) => setTimeout(r, Math.random() * 350));
      agent.kill('SIGKILL');
      const { signal } = await agent.exited;
      expect(signal, agent.output.slice(-5).join('\n')).toBe('SIGKILL');
      tokens.add(await readToken(path)); // parses and validates every time
    }
    expect(tokens.size).toBeGreaterThan(iterations / 4);

    const last = fleet.startRunner('crashy');
    await last.waitForLog((l) => l.msg === 'connected');
    await waitFor('ONLINE at the end', async () => (await fleet.runnerStatus(id)) === 'ONLINE');
    const audit = await fleet.rbtkJson<AuditEntry[]>(['audit', '--resource-type', 'runner']);
    expect(audit.filter((a) => a.action === 'runner.revoke')).toEqual([]);
  }, 600_000);
});
