import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode } from '@rbtk/protocol';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeConfig } from '../src/config/write.js';
import { runDoctor, type DoctorReport } from '../src/doctor/doctor.js';
import { assertBuilt, runCli } from './helpers/cli.js';
import { CoordinatorPeer } from './helpers/coordinator-peer.js';
import { ensureTestImage, requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { runnerConfig, tempDir } from './helpers/fixtures.js';
import { standInNvidiaSmi, TWO_GPUS, type StandIn } from './helpers/nvidia-smi.js';

const hasDocker = await requireDocker('doctor tests');

const statuses = (r: DoctorReport) => Object.fromEntries(r.checks.map((c) => [c.name, c.status]));
const check = (r: DoctorReport, name: string) => r.checks.find((c) => c.name === name)!;

describe.skipIf(!hasDocker)('rbtk-runner doctor (real files, a real WebSocket peer, the real Docker Engine)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let peer: CoordinatorPeer;
  let smi: StandIn | undefined;
  let configPath: string;
  const REFUSED_TOKEN = 'refused';

  beforeAll(async () => {
    assertBuilt();
    await ensureTestImage();
  });
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    configPath = join(dir, 'runner.yaml');
    // Accepts the upgrade unless the token is the one the test marks as revoked.
    peer = await CoordinatorPeer.start({
      gate: (u) =>
        u.authorization?.includes(REFUSED_TOKEN)
          ? { status: 401, body: { error: { code: ErrorCode.TokenRevoked, message: 'this runner was revoked' } } }
          : undefined,
    });
  });
  afterEach(async () => {
    await peer.close();
    await smi?.cleanup();
    smi = undefined;
    await cleanup();
  });

  it('a good host: every check passes, and the probe closed 1000 without a hello', async () => {
    await writeConfig(configPath, runnerConfig(peer.url, { airgapped: true, test_image: TEST_IMAGE }));
    smi = await standInNvidiaSmi({ capture: TWO_GPUS });
    const report = await runDoctor({ configPath, env: { ...smi.env, STATE_DIRECTORY: join(dir, 'state') }, gpuOptions: { env: smi.env } });
    const gpuVerdict = check(report, 'docker gpus');
    // Whether Docker serves GPUs depends on this engine (the stand-in hook); the rest must pass.
    expect(statuses(report)).toEqual({
      config: 'ok',
      coordinator: 'ok',
      docker: 'ok',
      'nvidia-smi': 'ok',
      'docker gpus': gpuVerdict.status,
      'air-gapped': 'ok',
      'test image': 'ok',
    });
    expect(report.ok).toBe(gpuVerdict.status === 'ok');
    expect(check(report, 'config').verdict).toBe(`${configPath} parses, mode 0600`);
    expect(check(report, 'docker').verdict).toMatch(/^Docker Engine \d+\.\d+\S* \(API \d+\.\d+\) at (\/\S+\.sock|[\w.-]+:\d+)$/);
    expect(check(report, 'nvidia-smi').verdict).toBe('2 GPUs (2 x GeForce RTX 2080 Ti 10989 MiB), driver 410.73, CUDA 10.0');
    expect(check(report, 'air-gapped').verdict).toBe('air-gapped: never pulls: images must be loaded with `docker load`; job containers use network none');
    await peer.waitFor('the probe closing', () => peer.closes.length > 0);
    expect(peer.closes[0]).toMatchObject({ code: 1000 });
    expect(peer.received).toEqual([]);
  });

  it('a broken host: each failure says why and how to fix it', async () => {
    await writeConfig(configPath, runnerConfig(peer.url, { token: `rbtk_run_${REFUSED_TOKEN}`, test_image: 'rbtk-test/not-loaded:1' }));
    await chmod(configPath, 0o644);
    smi = await standInNvidiaSmi({ script: 'echo "NVIDIA-SMI has failed" >&2; exit 9' });
    const report = await runDoctor({ configPath, env: { STATE_DIRECTORY: join(dir, 'state') }, gpuOptions: { env: smi.env } });
    expect(report.ok).toBe(false);
    expect(statuses(report)).toEqual({
      config: 'fail',
      coordinator: 'fail',
      docker: 'ok',
      'nvidia-smi': 'fail',
      'docker gpus': 'skip',
      'air-gapped': 'skip',
      'test image': 'fail',
    });
    expect(check(report, 'config')).toMatchObject({ verdict: expect.stringContaining('mode 0644'), fix: `chmod 600 ${configPath}` });
    expect(check(report, 'coordinator').verdict).toMatch(/refused the runner token: this runner was revoked/);
    expect(check(report, 'nvidia-smi').verdict).toBe('nvidia-smi -q -x exited with code 9: NVIDIA-SMI has failed; assuming no GPUs');
    expect(check(report, 'test image').fix).toBe('docker pull rbtk-test/not-loaded:1');
  });

  it('the CLI: exit 1 and one line per check for a config that does not parse; --json too', async () => {
    await writeFile(configPath, 'url: [not a url\n', { mode: 0o600 });
    const text = await runCli(['doctor', '--config', configPath], { PATH: '/usr/bin:/bin' });
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^FAIL config\s+.*not valid YAML/m);
    expect(text.stdout).toMatch(/^\s+fix: /m);
    expect(text.stdout).toMatch(/^-\s+coordinator\s+not checked: no valid config$/m);
    expect(text.stdout).toMatch(/check(s)? failed\n$/);
    const json = await runCli(['doctor', '--config', configPath, '--json'], { PATH: '/usr/bin:/bin' });
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as DoctorReport;
    expect(report.ok).toBe(false);
    expect(report.checks[0]).toMatchObject({ name: 'config', status: 'fail' });
  });
});
