import { chmod, lstat, mkdir, readFile, readdir, realpath, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RunnerConfig } from '@rbtk/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../src/config/load.js';
import { removeStaleTempFiles, writeConfig } from '../src/config/write.js';
import { ConfigError } from '../src/errors.js';
import { requireStrace } from '../../../test/helpers/strace.js';
import { assertBuilt } from './helpers/cli.js';
import { interruptedWrite, tracedWrite } from './helpers/config-writer.js';
import { runnerConfig, tempDir } from './helpers/fixtures.js';

const hasStrace = requireStrace('the directory fsync of a symlinked runner.yaml');

describe('runner.yaml', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let path: string;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    path = join(dir, 'runner.yaml');
  });
  afterEach(() => cleanup());

  it('writes mode 0600 with a header, and loads back with defaults filled in', async () => {
    const cfg = runnerConfig('http://127.0.0.1:7420');
    await writeConfig(path, { url: cfg.url, runner_id: cfg.runner_id, token: cfg.token, name: cfg.name, pool: 'ci' });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const text = await readFile(path, 'utf8');
    expect(text).toMatch(/^# rbtk-runner configuration, managed by rbtk-runner\.\n# The token rotates/);
    expect(text.indexOf('url:')).toBeLessThan(text.indexOf('token:'));
    const loaded = await loadConfig(path);
    expect(loaded).toEqual({
      url: cfg.url,
      runner_id: cfg.runner_id,
      token: cfg.token,
      name: 'host-a',
      pool: 'ci',
      labels: {},
      airgapped: false,
      max_jobs: 1,
      executors: ['docker'],
      shutdown_timeout: '10m',
      log_level: 'info',
    });
  });

  it('names the file when it is missing', async () => {
    const err = await loadConfig(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(`${path}: no such file; run "rbtk-runner register" first`);
  });

  it.each([
    ['not YAML', 'url: [unclosed', /not valid YAML/, undefined],
    ['not a mapping', '- a\n- b\n', /expected a YAML mapping/, undefined],
    ['a bad value', 'url: http://x\nrunner_id: r\ntoken: t\nname: h\nmax_jobs: 0\n', /max_jobs: /, 'max_jobs'],
    ['a missing key', 'url: http://x\nrunner_id: r\nname: h\n', /token: /, 'token'],
    ['an unknown key', 'url: http://x\nrunner_id: r\ntoken: t\nname: h\nmax_job: 2\n', /max_job/, 'max_job'],
    ['a bad url', 'url: ftp://x\nrunner_id: r\ntoken: t\nname: h\n', /url: url must be/, 'url'],
    ['a bad label key', 'url: http://x\nrunner_id: r\ntoken: t\nname: h\nlabels: {"-x": y}\n', /labels/, undefined],
  ])('refuses %s with the file and key in the message', async (_what, text, pattern, key) => {
    await writeFile(path, text);
    const err = (await loadConfig(path).catch((e: unknown) => e)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message.startsWith(`${path}: `)).toBe(true);
    expect(err.message).toMatch(pattern);
    if (key) expect(err.key).toBe(key);
  });

  it('refuses to write a config that would not load back', async () => {
    const bad = { ...runnerConfig('http://x'), max_jobs: 0 };
    await expect(writeConfig(path, bad)).rejects.toThrow(/refusing to write .*max_jobs/);
    await expect(stat(path)).rejects.toThrow();
  });

  it('sets 0600 even over a file that was 0644', async () => {
    await writeConfig(path, runnerConfig('http://x'));
    await chmod(path, 0o644);
    await writeConfig(path, runnerConfig('http://x'));
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('leaves a valid file at every instant while the process rewrites it many times', async () => {
    const base = runnerConfig('http://127.0.0.1:7420');
    await writeConfig(path, base);
    const written = Array.from({ length: 60 }, (_, i) => ({ ...base, token: `${base.token}${i}` }));
    let done = false;
    let reads = 0;
    const reader = (async () => {
      while (!done) {
        const cfg = RunnerConfig.parse(parseYaml(await readFile(path, 'utf8')));
        expect(cfg.runner_id).toBe(base.runner_id);
        expect((await stat(path)).mode & 0o777).toBe(0o600);
        reads++;
      }
    })();
    await Promise.all(written.map((cfg) => writeConfig(path, cfg)));
    done = true;
    await reader;
    expect(reads).toBeGreaterThan(0);
    // Writes to one file are queued in call order: the last one wins, and no temp file is left.
    expect((await loadConfig(path)).token).toBe(written.at(-1)!.token);
    expect(await readdir(dir)).toEqual(['runner.yaml']);
  });

  it('removes the temp file a killed write left, and no backup, even one named like a temp file', async () => {
    assertBuilt();
    const cfg = runnerConfig('http://x');
    await writeConfig(path, cfg);
    // write-file-atomic's temp names are <file>.<uint32 in decimal>: these have that shape too.
    const backups = ['runner.yaml.20240601', 'runner.yaml.1', 'runner.yaml.bak'];
    for (const name of backups) await writeFile(join(dir, name), await readFile(path));
    const left = await interruptedWrite(path, cfg, dir);
    // An empty one holds nothing to keep (a kill right after the open leaves it unmarked).
    await writeFile(join(dir, 'runner.yaml.42'), '');
    const removed = await removeStaleTempFiles(path);
    expect(removed).toContain(left);
    expect(removed).toContain('runner.yaml.42');
    expect((await readdir(dir)).sort()).toEqual(['runner.yaml', ...backups].sort());
    await loadConfig(path);
  });

  describe('a symlinked runner.yaml', () => {
    let link: string;
    let realDir: string;

    beforeEach(async () => {
      realDir = join(dir, 'real');
      await mkdir(join(dir, 'etc'));
      await mkdir(realDir);
      link = join(dir, 'etc', 'runner.yaml');
      await writeConfig(join(realDir, 'runner.yaml'), runnerConfig('http://x'));
      await symlink(join(realDir, 'runner.yaml'), link);
    });

    it('is written through: the link stays, the target gets the new file', async () => {
      const cfg = runnerConfig('http://x', { token: 'rbtk_run_new' });
      await writeConfig(link, cfg);
      expect((await lstat(link)).isSymbolicLink()).toBe(true);
      expect((await loadConfig(join(realDir, 'runner.yaml'))).token).toBe('rbtk_run_new');
      expect((await stat(join(realDir, 'runner.yaml'))).mode & 0o777).toBe(0o600);
      expect(await readdir(realDir)).toEqual(['runner.yaml']);
    });

    it.skipIf(!hasStrace)("fsyncs the target's directory after the rename, where the rename happened", async () => {
      assertBuilt();
      const trace = join(dir, 'trace.txt');
      await tracedWrite(link, runnerConfig('http://x'), trace);
      const lines = (await readFile(trace, 'utf8')).split('\n');
      const target = await realpath(realDir);
      const renamed = lines.findIndex((l) => /rename/.test(l) && l.includes(`"${join(target, 'runner.yaml')}"`) && / = 0$/.test(l));
      expect(renamed, lines.join('\n')).toBeGreaterThanOrEqual(0);
      const synced = lines.slice(renamed + 1).filter((l) => /fsync\(\d+</.test(l)).map((l) => /fsync\(\d+<([^>]*)>/.exec(l)![1]);
      expect(synced).toContain(target);
      expect(synced).not.toContain(join(await realpath(dir), 'etc'));
    });

    it("removes a killed write's temp file from the target's directory", async () => {
      assertBuilt();
      const left = await interruptedWrite(link, runnerConfig('http://x'), realDir);
      expect(await removeStaleTempFiles(link)).toContain(left);
      expect(await readdir(realDir)).toEqual(['runner.yaml']);
      expect(await readdir(join(dir, 'etc'))).toEqual(['runner.yaml']);
    });
  });
});
