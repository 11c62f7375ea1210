import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_PATH, controlSocketPath, resolveConfigPath, resolveStateDir } from '../src/config/paths.js';

describe('resolveConfigPath', () => {
  it('prefers the flag, then RBTK_RUNNER_CONFIG, then the default', () => {
    const env = { RBTK_RUNNER_CONFIG: '/srv/env.yaml' };
    expect(resolveConfigPath('/srv/flag.yaml', env)).toBe('/srv/flag.yaml');
    expect(resolveConfigPath(undefined, env)).toBe('/srv/env.yaml');
    expect(resolveConfigPath(undefined, {})).toBe(DEFAULT_CONFIG_PATH);
    expect(resolveConfigPath('', {})).toBe(DEFAULT_CONFIG_PATH);
  });

  it('makes a relative flag absolute', () => {
    expect(resolveConfigPath('conf/runner.yaml', {})).toBe(`${process.cwd()}/conf/runner.yaml`);
  });
});

describe('resolveStateDir', () => {
  it('uses state_dir from runner.yaml first, relative to the config directory', () => {
    const env = { STATE_DIRECTORY: '/var/lib/systemd-dir' };
    expect(resolveStateDir({ state_dir: '/data/rbtk' }, '/srv/runner.yaml', env)).toBe('/data/rbtk');
    expect(resolveStateDir({ state_dir: 'st' }, '/srv/runner.yaml', env)).toBe('/srv/st');
  });

  it("then systemd's STATE_DIRECTORY (its first entry)", () => {
    expect(resolveStateDir({}, '/srv/runner.yaml', { STATE_DIRECTORY: '/var/lib/a:/var/lib/b' })).toBe('/var/lib/a');
  });

  it('then /var/lib/rbtk-runner for the default config, else <config dir>/state', () => {
    expect(resolveStateDir({}, DEFAULT_CONFIG_PATH, {})).toBe('/var/lib/rbtk-runner');
    expect(resolveStateDir({}, '/home/ci/rbtk/runner.yaml', {})).toBe('/home/ci/rbtk/state');
    expect(controlSocketPath('/home/ci/rbtk/state')).toBe('/home/ci/rbtk/state/control.sock');
  });
});
