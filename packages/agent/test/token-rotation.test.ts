import { join } from 'node:path';
import type { RunnerConfig, TokenConfirm } from '@rbtk/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { writeConfig } from '../src/config/write.js';
import { TokenRotation } from '../src/token-rotation.js';
import { memoryLogger, runnerConfig, runnerToken, tempDir } from './helpers/fixtures.js';

describe('TokenRotation', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let path: string;
  let config: RunnerConfig;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    path = join(dir, 'runner.yaml');
    config = runnerConfig('http://127.0.0.1:7420');
    await writeConfig(path, config);
  });
  afterEach(() => cleanup());

  it('serializes rotations and token reads: file, then memory, then confirm', async () => {
    const events: string[] = [];
    const slowWrite = async (p: string, cfg: RunnerConfig) => {
      events.push(`write-start ${cfg.token.slice(-4)}`);
      await new Promise((r) => setTimeout(r, 50));
      await writeConfig(p, cfg);
      events.push(`write-end ${cfg.token.slice(-4)}`);
    };
    const rotation = new TokenRotation({ configPath: path, config, logger: memoryLogger().logger, writeConfig: slowWrite });
    const [a, b] = [runnerToken(), runnerToken()];
    const confirm = (m: TokenConfirm) => {
      events.push(`confirm ${m.tokenId}`);
      return true;
    };
    const before = rotation.currentToken();
    const first = rotation.rotate(a, confirm);
    const read1 = rotation.currentToken();
    const second = rotation.rotate(b, confirm);
    const read2 = rotation.currentToken();
    // A read waits for the writes queued before it, and no later ones.
    expect(await Promise.all([before, first, read1, second, read2])).toEqual([config.token, true, a.token, true, b.token]);
    const [ta, tb] = [a.token.slice(-4), b.token.slice(-4)];
    expect(events).toEqual([`write-start ${ta}`, `write-end ${ta}`, `confirm ${a.id}`, `write-start ${tb}`, `write-end ${tb}`, `confirm ${b.id}`]);
    expect((await loadConfig(path)).token).toBe(b.token);
  });

  it('a failed write keeps the old token, sends no confirm, and does not block the next rotation', async () => {
    let fail = true;
    const rotation = new TokenRotation({
      configPath: path,
      config,
      logger: memoryLogger().logger,
      writeConfig: async (p, cfg) => {
        if (fail) throw new Error('ENOSPC: no space left on device');
        await writeConfig(p, cfg);
      },
    });
    const confirms: string[] = [];
    const confirm = (m: TokenConfirm) => confirms.push(m.tokenId) > 0;
    const a = runnerToken();
    expect(await rotation.rotate(a, confirm)).toBe(false);
    expect(await rotation.currentToken()).toBe(config.token);
    expect(confirms).toEqual([]);
    fail = false;
    const b = runnerToken();
    expect(await rotation.rotate(b, confirm)).toBe(true);
    expect(await rotation.currentToken()).toBe(b.token);
    expect(confirms).toEqual([b.id]);
  });

  it.each([
    ['runner_id', { runner_id: 'runner0000000002' }],
    ['url', { url: 'http://127.0.0.2:7420' }],
  ])('does not rewrite runner.yaml once its %s changed under it (register --force), and keeps the old token', async (key, change) => {
    const log = memoryLogger();
    const rotation = new TokenRotation({ configPath: path, config, logger: log.logger });
    const other = { ...runnerConfig('http://127.0.0.1:7420'), ...change };
    await writeConfig(path, other);
    const confirms: string[] = [];
    const a = runnerToken();
    expect(await rotation.rotate(a, (m) => confirms.push(m.tokenId) > 0)).toBe(false);
    expect(await loadConfig(path)).toMatchObject({ runner_id: other.runner_id, url: other.url, token: other.token });
    expect(await rotation.currentToken()).toBe(config.token);
    expect(confirms).toEqual([]);
    const line = log.lines.find((l) => String(l.msg).startsWith('runner.yaml now holds another registration'));
    expect(line, `${key}: ${log.text()}`).toMatchObject({
      level: 50,
      tokenId: a.id,
      runnerId: config.runner_id,
      url: config.url,
      fileRunnerId: other.runner_id,
      fileUrl: other.url,
    });
  });

  it('a write that hangs does not hold a reconnect back: it gets the token in use, then the new one once saved', async () => {
    let release!: () => void;
    const hung = new Promise<void>((r) => (release = r));
    const { logger, lines } = memoryLogger();
    const rotation = new TokenRotation({
      configPath: path,
      config,
      logger,
      writeWaitMs: 100,
      writeConfig: async (p, cfg) => {
        await hung;
        await writeConfig(p, cfg);
      },
    });
    const a = runnerToken();
    const confirms: string[] = [];
    const rotated = rotation.rotate(a, (m) => (confirms.push(m.tokenId), true));
    const started = Date.now();
    // The coordinator still accepts the old token: it was neither confirmed nor replaced on disk.
    expect(await rotation.currentToken()).toBe(config.token);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(lines.some((l) => String(l.msg).includes('taking too long'))).toBe(true);
    expect(confirms).toEqual([]);
    release();
    expect(await rotated).toBe(true);
    expect(confirms).toEqual([a.id]);
    expect(await rotation.currentToken()).toBe(a.token);
    expect((await loadConfig(path)).token).toBe(a.token);
  });

  it('ignores something that is not a runner token', async () => {
    const log = memoryLogger();
    const rotation = new TokenRotation({ configPath: path, config, logger: log.logger });
    expect(await rotation.rotate({ id: 'x', token: 'rbtk_api_abcdefgh12345678_aaaaaaaaaaaaaaaaaaaaaa' }, () => true)).toBe(false);
    expect(await rotation.currentToken()).toBe(config.token);
    expect(log.lines[0]).toMatchObject({ msg: 'ignoring a rotated token that is not a runner token', token: 'rbtk_api_abcdefgh12345678_…' });
  });
});
