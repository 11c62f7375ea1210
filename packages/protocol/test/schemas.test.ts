import { describe, expect, it } from 'vitest';
import { HostedPoolSpec, JobSpec, PoolCreate, RegisterRequest, RegistrationTokenCreate, RunnerConfig } from '../src/index.js';
import { formatToken, parseToken, redactToken } from '../src/tokens.js';

describe('RunnerConfig (runner.yaml)', () => {
  const minimal = { url: 'http://127.0.0.1:7420', runner_id: 'r1', token: 't', name: 'host-1' };

  it('fills the defaults', () => {
    expect(RunnerConfig.parse(minimal)).toMatchObject({
      labels: {},
      airgapped: false,
      max_jobs: 1,
      executors: ['docker'],
      shutdown_timeout: '10m',
      log_level: 'info',
    });
  });

  it('refuses unknown keys, so a typo is not silently ignored', () => {
    expect(RunnerConfig.safeParse({ ...minimal, max_job: 2 }).success).toBe(false);
  });

  it('refuses a non-http url and a bad duration', () => {
    expect(RunnerConfig.safeParse({ ...minimal, url: 'ftp://x' }).success).toBe(false);
    expect(RunnerConfig.safeParse({ ...minimal, shutdown_timeout: '10 minutes' }).success).toBe(false);
  });
});

describe('pool and registration bodies', () => {
  it('refuses pool names a shell or URL would mangle', () => {
    for (const name of ['', 'Has Space', '../etc', 'a'.repeat(64), '-lead']) {
      expect(PoolCreate.safeParse({ name }).success, name).toBe(false);
    }
    expect(PoolCreate.parse({ name: 'gpu-a100' })).toEqual({
      name: 'gpu-a100',
      type: 'self-hosted',
      tags: {},
      airgapped: false,
      allowNonAirgappedJobs: false,
      dockerNetwork: null,
    });
  });

  it('lets a pool name a container network, but never the host network', () => {
    expect(PoolCreate.parse({ name: 'lab', dockerNetwork: 'lab-internal' }).dockerNetwork).toBe('lab-internal');
    expect(PoolCreate.safeParse({ name: 'lab', dockerNetwork: 'host' }).success).toBe(false);
    expect(PoolCreate.safeParse({ name: 'lab', dockerNetwork: 'has space' }).success).toBe(false);
  });

  it('defaults a registration token to one hour and validates uses', () => {
    expect(RegistrationTokenCreate.parse({})).toEqual({ ttl: '1h' });
    expect(RegistrationTokenCreate.safeParse({ uses: 0 }).success).toBe(false);
  });

  it('validates label keys on registration', () => {
    expect(RegisterRequest.safeParse({ name: 'h', labels: { 'bad key': 'x' } }).success).toBe(false);
  });
});

describe('tokens', () => {
  it('round-trips and redacts the secret', () => {
    const token = formatToken('run', 'abcdEFGH12345678', 'S3cr3t-secret_value-xyz');
    expect(parseToken(token)).toEqual({ kind: 'run', id: 'abcdEFGH12345678', secret: 'S3cr3t-secret_value-xyz' });
    expect(redactToken(token)).toBe('rbtk_run_abcdEFGH12345678_…');
    expect(redactToken('whatever-secret')).toBe('[redacted]');
  });

  it('does not parse foreign tokens', () => {
    expect(parseToken('ghp_abcdefgh')).toBeNull();
    expect(parseToken('rbtk_xyz_abcdefgh12345678_' + 'x'.repeat(20))).toBeNull();
  });
});

describe('positive durations (job timeouts, token lifetimes, hosted pools’ waits)', () => {
  const issues = (r: { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } }) =>
    r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];
  const job = (timeout: string) => JobSpec.safeParse({ pool: 'p', executor: { type: 'shell', command: ['true'] }, timeout });

  it('refuses 0s and more than ten years, and says which', () => {
    expect(issues(job('0s'))).toEqual(['timeout: must be longer than 0s']);
    expect(issues(job('3651d'))).toEqual(['timeout: at most 3650d (ten years)']);
    expect(issues(RegistrationTokenCreate.safeParse({ ttl: '99999999d' }))).toEqual(['ttl: at most 3650d (ten years)']);
    expect(job('3650d').success).toBe(true);
  });

  it('answers text that is no duration with one issue instead of throwing', () => {
    // Every refinement runs: the later ones must not parse what the first one refused.
    expect(issues(job('soon'))).toEqual(['timeout: a duration such as 500ms, 2s, 15m or 24h']);
    const hosted = HostedPoolSpec.safeParse({ provider: 'process', target: 1, warmingTimeout: 'soon' });
    expect(issues(hosted).filter((i) => i.startsWith('warmingTimeout'))).toEqual(['warmingTimeout: a duration such as 500ms, 2s, 15m or 24h']);
  });
});
