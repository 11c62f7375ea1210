import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/errors.js';
import { parseCoordinatorMessage, parseRunnerMessage } from '../src/messages.js';

const hello = {
  type: 'hello',
  agentVersion: '0.1.0',
  host: { hostname: 'gpu-01', os: 'Debian 12', arch: 'x64', cpus: 16, memoryBytes: 64e9 },
  capabilities: { executors: ['docker'], maxJobs: 2, labels: { gpu: 'a100' }, airgapped: false },
};

describe('parseRunnerMessage', () => {
  it('accepts each runner message', () => {
    for (const frame of [hello, { type: 'heartbeat', seq: 3 }, { type: 'token_confirm', tokenId: 'abcdefgh12345678' }]) {
      const parsed = parseRunnerMessage(JSON.stringify(frame));
      expect(parsed).toMatchObject({ ok: true, message: { type: frame.type } });
    }
  });

  it('says when a frame is not JSON', () => {
    expect(parseRunnerMessage('{"type":')).toMatchObject({ ok: false, code: ErrorCode.MalformedMessage });
  });

  it('names the known types for an unknown one', () => {
    const parsed = parseRunnerMessage(JSON.stringify({ type: 'launch_missiles' }));
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.code).toBe(ErrorCode.UnknownMessage);
      expect(parsed.error).toContain('hello, heartbeat, token_confirm');
    }
  });

  it('names the bad field of a known type', () => {
    const parsed = parseRunnerMessage(JSON.stringify({ type: 'heartbeat', seq: 'three' }));
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.code).toBe(ErrorCode.MalformedMessage);
      expect(parsed.error).toMatch(/heartbeat.*seq/s);
    }
  });

  it.each(['[]', 'null', '42', '"hello"'])('refuses the non-object %s', (data) => {
    expect(parseRunnerMessage(data).ok).toBe(false);
  });

  it('does not accept coordinator messages from a runner', () => {
    expect(parseRunnerMessage(JSON.stringify({ type: 'welcome' })).ok).toBe(false);
  });
});

describe('parseCoordinatorMessage', () => {
  it('accepts a heartbeat ack carrying a rotated token', () => {
    const frame = {
      type: 'heartbeat_ack',
      seq: 1,
      status: 'ONLINE',
      heartbeatIntervalMs: 15_000,
      rotatedToken: { id: 'abcdefgh12345678', token: 'rbtk_run_abcdefgh12345678_' + 'x'.repeat(43) },
    };
    expect(parseCoordinatorMessage(JSON.stringify(frame))).toMatchObject({ ok: true, message: frame });
  });

  it('refuses an unknown runner status', () => {
    const frame = { type: 'heartbeat_ack', seq: 1, status: 'SLEEPING', heartbeatIntervalMs: 1000 };
    expect(parseCoordinatorMessage(JSON.stringify(frame)).ok).toBe(false);
  });
});
