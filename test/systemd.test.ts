import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EXIT_REVOKED, EXIT_UPGRADE, parseDuration, RunnerConfig } from '@rbtk/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT } from '../packages/agent/src/cli/exit-codes.js';
import { BIN, REPO_ROOT } from './helpers/processes.js';

/*
 * The units and systemd/install.sh. `systemd-analyze verify` runs on the units
 * exactly as install.sh installs them (into a temp root, with --prefix at a
 * directory of links to the built bins, so the ExecStart= checks find real
 * executables); install.sh itself runs against a temp root, never the real /etc.
 */
const run = promisify(execFile);
const CI = process.env.CI === 'true';
const hasAnalyze = await run('systemd-analyze', ['--version']).then(() => true, () => false);
if (!hasAnalyze && CI) throw new Error('systemd-analyze is required under CI (apt-get install systemd; .ci/run does)');
if (!hasAnalyze) console.warn('skipping systemd-analyze verify: systemd-analyze is not installed (apt-get install systemd); CI requires it');
// useradd --prefix edits the temp root's own passwd files, but only root may run it.
const hasUseradd = await run('useradd', ['--help']).then(
  ({ stdout }) => stdout.includes('--prefix'),
  (err: { stdout?: string }) => String(err.stdout ?? '').includes('--prefix'), // some versions exit 2 after --help
);
const canCreateUsers = process.getuid?.() === 0 && hasUseradd;
if (!canCreateUsers) console.warn('install.sh: testing with --no-users only (creating users in the temp root needs root and a useradd with --prefix)');

const INSTALL = join(REPO_ROOT, 'systemd', 'install.sh');
const UNITS = ['rbtk-runner.service', 'rbtk-coordinator.service'] as const;

const temps: string[] = [];
afterEach(async () => {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

async function unitText(unit: string): Promise<string> {
  return readFile(join(REPO_ROOT, 'systemd', unit), 'utf8');
}

/** Every value of KEY= in the unit, in order. */
function values(text: string, key: string): string[] {
  return [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
}

function one(text: string, key: string): string {
  const all = values(text, key);
  expect(all, key).toHaveLength(1);
  return all[0]!;
}

/** systemd time spans as the units write them: 30s, 11min, 2h. */
function timeSpanMs(text: string): number {
  const m = /^(\d+)(s|min|h)$/.exec(text);
  if (!m) throw new Error(`unexpected time span ${text}`);
  return Number(m[1]) * { s: 1000, min: 60_000, h: 3_600_000 }[m[2] as 's' | 'min' | 'h'];
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function install(...args: string[]): Promise<Ran> {
  try {
    const { stdout, stderr } = await run('bash', [INSTALL, ...args], { env: { ...process.env, DESTDIR: '' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** A directory of links to the built bins, to install with --prefix. */
async function binPrefix(): Promise<string> {
  const prefix = await tempDir('rbtk-prefix-');
  await mkdir(join(prefix, 'bin'));
  await symlink(BIN.runner, join(prefix, 'bin', 'rbtk-runner'));
  await symlink(BIN.coordinator, join(prefix, 'bin', 'rbtk-coordinator'));
  return prefix;
}

/** A root with just enough of /etc for useradd --prefix: root, and a docker group when asked. */
async function seedRoot(options: { docker: boolean; accounts: boolean }): Promise<string> {
  const root = await tempDir('rbtk-root-');
  if (!options.accounts) return root;
  await mkdir(join(root, 'etc'));
  const docker = options.docker ? 'docker:x:990:\n' : '';
  await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
  await writeFile(join(root, 'etc', 'group'), `root:x:0:\n${docker}`);
  await writeFile(join(root, 'etc', 'shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o640 });
  await writeFile(join(root, 'etc', 'gshadow'), `root:*::\n${options.docker ? 'docker:!::\n' : ''}`, { mode: 0o640 });
  return root;
}

type Tree = Record<string, string>;

/** path → type, mode, owner and content hash of everything under root. */
async function snapshot(root: string, dir = ''): Promise<Tree> {
  const tree: Tree = {};
  for (const name of (await readdir(join(root, dir))).sort()) {
    const rel = `${dir}/${name}`;
    const st = await lstat(join(root, rel));
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isDirectory()) {
      tree[rel] = `dir ${mode} ${st.uid}:${st.gid}`;
      Object.assign(tree, await snapshot(root, rel));
    } else if (st.isSymbolicLink()) {
      tree[rel] = 'link';
    } else {
      const hash = createHash('sha256').update(await readFile(join(root, rel))).digest('hex').slice(0, 16);
      tree[rel] = `file ${mode} ${st.uid}:${st.gid} ${hash}`;
    }
  }
  return tree;
}

async function modeOf(path: string): Promise<string> {
  return ((await stat(path)).mode & 0o7777).toString(8);
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(() => true, () => false);
}

/** uid and gid of NAME in the root's own passwd/group files. */
async function account(root: string, file: 'passwd' | 'group', name: string): Promise<string[] | undefined> {
  const text = await readFile(join(root, 'etc', file), 'utf8');
  return text.split('\n').find((l) => l.startsWith(`${name}:`))?.split(':');
}

/** Lines of install.sh output that report a change. */
function changes(stdout: string): string[] {
  return stdout.split('\n').filter((l) => /^(created|installed|updated|added|wrote|fixed|removed|ran) /.test(l));
}

describe('systemd units', () => {
  it('run the runner as its own user with Docker, sandboxed, in systemd-managed directories', async () => {
    const text = await unitText('rbtk-runner.service');
    expect(one(text, 'User')).toBe('rbtk-runner');
    expect(one(text, 'Group')).toBe('rbtk-runner');
    expect(one(text, 'SupplementaryGroups')).toBe('docker');
    expect(one(text, 'StateDirectory')).toBe('rbtk-runner');
    expect(one(text, 'ConfigurationDirectory')).toBe('rbtk-runner');
    expect(one(text, 'ExecStart')).toBe('/usr/bin/rbtk-runner run --config /etc/rbtk-runner/runner.yaml');
    for (const [key, value] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes']]) {
      expect(one(text, key!), key).toBe(value);
    }
    // Token rotation rewrites runner.yaml: its directory must stay writable under ProtectSystem=strict.
    expect(one(text, 'ReadWritePaths').split(/\s+/).sort()).toEqual(['/etc/rbtk-runner', '/var/lib/rbtk-runner']);
  });

  it('give a draining runner its whole shutdown_timeout before SIGKILL', async () => {
    const text = await unitText('rbtk-runner.service');
    expect(one(text, 'KillSignal')).toBe('SIGTERM');
    const drainMs = parseDuration(RunnerConfig.parse({ url: 'http://x:1', runner_id: 'r', token: 't', name: 'n' }).shutdown_timeout);
    expect(drainMs).toBe(10 * 60_000);
    const stopMs = timeSpanMs(one(text, 'TimeoutStopSec'));
    expect(stopMs).toBeGreaterThan(drainMs);
    expect(stopMs).toBeLessThanOrEqual(drainMs + 5 * 60_000);
    // The comment says where the number comes from.
    expect(text).toMatch(/shutdown_timeout \(10m by default\)/);
  });

  it('restart the runner on failure and after an upgrade, never when revoked or misconfigured', async () => {
    const text = await unitText('rbtk-runner.service');
    expect(one(text, 'Restart')).toBe('on-failure');
    expect(EXIT.REVOKED).toBe(EXIT_REVOKED);
    expect(one(text, 'RestartPreventExitStatus').split(/\s+/).map(Number).sort()).toEqual([EXIT.REVOKED, EXIT.CONFIG].sort());
    expect(EXIT_UPGRADE).toBe(75);
    expect(one(text, 'RestartForceExitStatus').split(/\s+/).map(Number)).toEqual([EXIT_UPGRADE]);
    expect(one(text, 'SuccessExitStatus').split(/\s+/).map(Number)).toEqual([EXIT_UPGRADE]);
  });

  it('run the coordinator as its own user, sandboxed, with its state writable', async () => {
    const text = await unitText('rbtk-coordinator.service');
    expect(one(text, 'User')).toBe('rbtk');
    expect(one(text, 'StateDirectory')).toBe('rbtk');
    expect(one(text, 'ConfigurationDirectory')).toBe('rbtk');
    expect(one(text, 'ExecStart')).toBe('/usr/bin/rbtk-coordinator serve --data-dir /var/lib/rbtk');
    for (const [key, value] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes']]) {
      expect(one(text, key!), key).toBe(value);
    }
    expect(one(text, 'ReadWritePaths')).toBe('/var/lib/rbtk');
    expect(one(text, 'KillSignal')).toBe('SIGTERM');
    expect(one(text, 'Restart')).toBe('on-failure');
    expect(values(text, 'RestartPreventExitStatus')).toEqual(['2']);
  });
});

describe.skipIf(!hasAnalyze)('systemd-analyze verify', () => {
  /** Runs verify on one installed unit: exit 0 and not one warning about it (unknown keys only warn). */
  async function verify(unitPath: string, unit: string): Promise<void> {
    const res = await run('systemd-analyze', ['verify', unitPath]).then(
      ({ stderr }) => ({ code: 0, stderr }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code ?? -1, stderr: err.stderr ?? '' }),
    );
    const about = res.stderr.split('\n').filter((l) => l.includes(unit.replace('.service', '')));
    expect({ code: res.code, warnings: about }, `${unitPath}:\n${res.stderr}`).toEqual({ code: 0, warnings: [] });
  }

  it.each([
    ['with a docker group', true],
    ['without Docker (the drop-in clears SupplementaryGroups)', false],
  ])('passes on both units as install.sh installs them, %s', async (_, docker) => {
    const root = await seedRoot({ docker, accounts: true });
    const prefix = await binPrefix();
    const res = await install('--runner', '--coordinator', '--root', root, '--prefix', prefix, '--no-users');
    expect(res.code, res.stderr).toBe(0);
    const unitDir = join(root, 'etc', 'systemd', 'system');
    const dropIn = join(unitDir, 'rbtk-runner.service.d', '10-no-docker.conf');
    expect(await exists(dropIn)).toBe(!docker);
    for (const unit of UNITS) {
      const installed = await readFile(join(unitDir, unit), 'utf8');
      expect(installed).toBe((await unitText(unit)).replace(/^ExecStart=\/usr\/bin\//m, `ExecStart=${prefix}/bin/`));
      await verify(join(unitDir, unit), unit);
    }
  });

  it('fails on a unit whose ExecStart does not exist (the check is real)', async () => {
    const root = await seedRoot({ docker: true, accounts: true });
    const res = await install('--runner', '--root', root, '--prefix', join(root, 'nowhere'), '--no-users');
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/note: .*nowhere\/bin\/rbtk-runner does not exist/);
    const unitPath = join(root, 'etc', 'systemd', 'system', 'rbtk-runner.service');
    const err = await run('systemd-analyze', ['verify', unitPath]).then(() => undefined, (e: { stderr?: string }) => e);
    expect(err?.stderr).toMatch(/rbtk-runner\.service: Command .*nowhere\/bin\/rbtk-runner is not executable/);
  });
});

describe('systemd/install.sh', () => {
  it('refuses to guess what to install, and --purge without --uninstall', async () => {
    const root = await seedRoot({ docker: true, accounts: true });
    const before = await snapshot(root);
    const none = await install('--root', root);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/choose --runner and\/or --coordinator/);
    const purge = await install('--runner', '--purge', '--root', root);
    expect(purge.code).toBe(2);
    expect(purge.stderr).toMatch(/--purge goes with --uninstall/);
    expect(await snapshot(root)).toEqual(before);
  });

  it('--dry-run says what it would do and changes nothing', async () => {
    const root = await seedRoot({ docker: true, accounts: true });
    const before = await snapshot(root);
    const res = await install('--runner', '--coordinator', '--root', root, '--dry-run', ...(canCreateUsers ? [] : ['--no-users']));
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^would install unit \/etc\/systemd\/system\/rbtk-runner\.service/m);
    expect(res.stdout).toMatch(/^would create dir \/etc\/rbtk-runner \(0700/m);
    if (canCreateUsers) expect(res.stdout).toMatch(/^would create system user rbtk-runner/m);
    expect(changes(res.stdout)).toEqual([]);
    expect(await snapshot(root)).toEqual(before);
  });

  it.skipIf(!canCreateUsers)(
    'installs users, directories and units into a temp root; a second run changes nothing; uninstall, then --purge, leave the root as it was',
    async () => {
      const root = await seedRoot({ docker: true, accounts: true });
      const prefix = await binPrefix();
      const pristine = await snapshot(root);
      const args = ['--runner', '--coordinator', '--root', root, '--prefix', prefix];

      const first = await install(...args);
      expect(first.code, first.stderr).toBe(0);
      expect(changes(first.stdout)).toEqual([
        'created system user rbtk-runner (home /var/lib/rbtk-runner, shell /usr/sbin/nologin)',
        'created dir /etc/rbtk-runner (0700 rbtk-runner:rbtk-runner)',
        'created dir /var/lib/rbtk-runner (0750 rbtk-runner:rbtk-runner)',
        `installed unit /etc/systemd/system/rbtk-runner.service (ExecStart ${prefix}/bin/rbtk-runner)`,
        'added rbtk-runner to group docker',
        'created system user rbtk (home /var/lib/rbtk, shell /usr/sbin/nologin)',
        'created dir /etc/rbtk (0750 root:rbtk)',
        'wrote file /etc/rbtk/coordinator.env (0640 root:rbtk, every setting commented out)',
        'created dir /var/lib/rbtk (0700 rbtk:rbtk)',
        `installed unit /etc/systemd/system/rbtk-coordinator.service (ExecStart ${prefix}/bin/rbtk-coordinator)`,
      ]);
      // A temp root is never this host's systemd.
      expect(first.stdout).toMatch(/^systemd: not reloaded \(--root /m);

      const runner = (await account(root, 'passwd', 'rbtk-runner'))!;
      expect(runner.slice(5)).toEqual(['/var/lib/rbtk-runner', '/usr/sbin/nologin']);
      expect(Number(runner[2])).toBeLessThan(1000); // --system
      const runnerGroup = (await account(root, 'group', 'rbtk-runner'))!;
      expect(runner[3]).toBe(runnerGroup[2]);
      expect((await account(root, 'group', 'docker'))![3]).toBe('rbtk-runner');
      const coordinator = (await account(root, 'passwd', 'rbtk'))!;
      expect(coordinator[6]).toBe('/usr/sbin/nologin');
      const rbtkGid = (await account(root, 'group', 'rbtk'))![2];

      const tree = await snapshot(root);
      expect(tree['/etc/rbtk-runner']).toBe(`dir 700 ${runner[2]}:${runner[3]}`);
      expect(tree['/var/lib/rbtk-runner']).toBe(`dir 750 ${runner[2]}:${runner[3]}`);
      expect(tree['/etc/rbtk']).toBe(`dir 750 0:${rbtkGid}`);
      expect(tree['/etc/rbtk/coordinator.env']).toMatch(new RegExp(`^file 640 0:${rbtkGid} `));
      expect(tree['/var/lib/rbtk']).toBe(`dir 700 ${coordinator[2]}:${coordinator[3]}`);
      expect(tree['/etc/systemd/system/rbtk-runner.service']).toMatch(/^file 644 0:0 /);
      expect(tree['/etc/systemd/system/rbtk-runner.service.d']).toBeUndefined(); // docker group exists

      const second = await install(...args);
      expect(second.code, second.stderr).toBe(0);
      expect(changes(second.stdout)).toEqual([]);
      expect(second.stdout).toMatch(/^user rbtk-runner: exists$/m);
      expect(second.stdout).toMatch(/^unit \/etc\/systemd\/system\/rbtk-runner\.service: unchanged$/m);
      expect(second.stdout).toMatch(/^group docker: rbtk-runner is a member$/m);
      expect(second.stdout).not.toMatch(/daemon-reload/);
      expect(await snapshot(root)).toEqual(tree);

      // A directory someone loosened is put back.
      await chmod(join(root, 'etc', 'rbtk-runner'), 0o755);
      const third = await install(...args);
      expect(changes(third.stdout)).toEqual([`fixed dir /etc/rbtk-runner (was 755 ${runner[2]}:${runner[3]}, now 0700 rbtk-runner:rbtk-runner)`]);
      expect(await snapshot(root)).toEqual(tree);

      // Registered and enabled, as the README's host setup leaves it.
      await writeFile(join(root, 'etc', 'rbtk-runner', 'runner.yaml'), 'url: http://coordinator:7420\nrunner_id: rAbCdEf0123456789\n', { mode: 0o600 });
      await mkdir(join(root, 'etc', 'systemd', 'system', 'multi-user.target.wants'));
      await symlink('/etc/systemd/system/rbtk-runner.service', join(root, 'etc', 'systemd', 'system', 'multi-user.target.wants', 'rbtk-runner.service'));

      const uninstall = await install(...args, '--uninstall');
      expect(uninstall.code, uninstall.stderr).toBe(0);
      expect(changes(uninstall.stdout)).toEqual([
        'removed /etc/systemd/system/multi-user.target.wants/rbtk-runner.service (enabled link)',
        'removed unit /etc/systemd/system/rbtk-runner.service',
        'removed unit /etc/systemd/system/rbtk-coordinator.service',
      ]);
      for (const unit of UNITS) expect(await exists(join(root, 'etc', 'systemd', 'system', unit))).toBe(false);
      // The registration, the state and the users stay for a later install.
      expect(await readFile(join(root, 'etc', 'rbtk-runner', 'runner.yaml'), 'utf8')).toMatch(/runner_id/);
      expect(await account(root, 'passwd', 'rbtk-runner')).toBeDefined();
      expect(uninstall.stdout).toMatch(/^kept \/etc\/rbtk-runner \(the registration\)/m);

      const purge = await install(...args, '--uninstall', '--purge');
      expect(purge.code, purge.stderr).toBe(0);
      expect(purge.stdout).toMatch(/^note: runner rAbCdEf0123456789 stays registered .*rbtk runner revoke rAbCdEf0123456789$/m);
      expect(changes(purge.stdout)).toEqual([
        'removed dir /etc/rbtk-runner',
        'removed dir /var/lib/rbtk-runner',
        'removed user rbtk-runner',
        'removed group rbtk-runner',
        'removed dir /etc/rbtk',
        'removed dir /var/lib/rbtk',
        'removed user rbtk',
        'removed group rbtk',
      ]);
      // Users, groups and the docker membership are gone from the root's own files.
      expect(await readFile(join(root, 'etc', 'passwd'), 'utf8')).toBe('root:x:0:0:root:/root:/bin/bash\n');
      expect(await readFile(join(root, 'etc', 'group'), 'utf8')).toBe('root:x:0:\ndocker:x:990:\n');
      const left = await snapshot(root);
      for (const path of Object.keys(pristine)) expect(left[path], path).toBeDefined();
      expect(Object.keys(left).filter((p) => /rbtk/.test(p))).toEqual([]);

      const again = await install(...args, '--uninstall', '--purge');
      expect(again.code, again.stderr).toBe(0);
      expect(changes(again.stdout)).toEqual([]);
    },
  );

  it('with --no-users: directories and units only, and the docker drop-in follows the docker group', async () => {
    const root = await seedRoot({ docker: false, accounts: true });
    const args = ['--runner', '--root', root, '--no-users'];
    const first = await install(...args);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^user rbtk-runner: skipped \(--no-users\)$/m);
    expect(first.stdout).toMatch(/^created dir \/etc\/rbtk-runner \(0700, ownership skipped: --no-users\)$/m);
    const dropIn = join(root, 'etc', 'systemd', 'system', 'rbtk-runner.service.d', '10-no-docker.conf');
    expect(await readFile(dropIn, 'utf8')).toMatch(/^\[Service\]\nSupplementaryGroups=$/m);
    expect(await modeOf(join(root, 'etc', 'rbtk-runner'))).toBe('700');
    expect(await modeOf(join(root, 'var', 'lib', 'rbtk-runner'))).toBe('750');

    const tree = await snapshot(root);
    const second = await install(...args);
    expect(changes(second.stdout)).toEqual([]);
    expect(await snapshot(root)).toEqual(tree);

    // Docker arrives: the drop-in goes.
    await writeFile(join(root, 'etc', 'group'), 'root:x:0:\ndocker:x:990:\n');
    const withDocker = await install(...args);
    expect(changes(withDocker.stdout)).toEqual(['removed /etc/systemd/system/rbtk-runner.service.d/10-no-docker.conf (a docker group exists now)']);
    expect(await exists(dropIn)).toBe(false);

    const uninstall = await install(...args, '--uninstall', '--purge');
    expect(uninstall.code, uninstall.stderr).toBe(0);
    expect(Object.keys(await snapshot(root)).filter((p) => /rbtk/.test(p))).toEqual([]);
  });

  it.skipIf(process.getuid?.() === 0)('will not touch the real system unless run as root', async () => {
    const res = await install('--runner');
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/run it as root/);
  });
});
