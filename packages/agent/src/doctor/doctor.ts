import { stat } from 'node:fs/promises';
import type { RunnerConfig } from '@rbtk/protocol/runner';
import Docker from 'dockerode';
import { loadConfig } from '../config/load.js';
import { controlSocketPath, resolveStateDir } from '../config/paths.js';
import { fetchDaemonStatus } from '../control/client.js';
import { dockerMessage } from '../executors/docker-error.js';
import { hasImage } from '../executors/docker-image.js';
import { checkDockerGpuSupport } from '../inventory/gpu-docker.js';
import { readGpus, type ReadGpusOptions, type GpuReport } from '../inventory/gpus.js';
import { fail, ok, skip, type DoctorCheck } from './doctor-check.js';
import { probeCoordinator } from './coordinator-probe.js';

export interface DoctorOptions {
  configPath: string;
  env?: NodeJS.ProcessEnv;
  docker?: Docker;
  gpuOptions?: ReadGpusOptions;
  timeoutMs?: number;
}

export interface DoctorReport {
  configPath: string;
  /** True when no check failed: the host can run the jobs its pool sends. */
  ok: boolean;
  checks: DoctorCheck[];
}

/**
 * `rbtk-runner doctor`: every check the host needs to run its jobs, each with
 * a verdict and a fix. Checks that depend on a failed one are skipped, not
 * failed twice. Never throws.
 */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const { configPath } = options;
  const env = options.env ?? process.env;
  const checks: DoctorCheck[] = [];

  const config = await checkConfig(configPath, checks);
  if (config) checks.push(await checkCoordinator(config, configPath, env, options.timeoutMs));
  else checks.push(skip('coordinator', 'not checked: no valid config'));

  const wantsDocker = !config || config.executors.includes('docker');
  const docker = options.docker ?? new Docker();
  const dockerCheck = wantsDocker ? await checkDocker(docker) : skip('docker', 'the docker executor is not enabled');
  checks.push(dockerCheck);

  const gpus = await readGpus({ env, ...options.gpuOptions });
  checks.push(checkNvidiaSmi(gpus));
  checks.push(await checkGpuSupport(gpus, dockerCheck, docker, config, wantsDocker));
  checks.push(...(await checkAirgapped(config, docker, dockerCheck)));

  return { configPath, ok: checks.every((c) => c.status !== 'fail'), checks };
}

async function checkConfig(path: string, checks: DoctorCheck[]): Promise<RunnerConfig | undefined> {
  let config: RunnerConfig;
  try {
    config = await loadConfig(path);
  } catch (err) {
    checks.push(fail('config', (err as Error).message, `fix the file, or register again: rbtk-runner register --config ${path} --force ...`));
    return undefined;
  }
  const mode = (await stat(path)).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    checks.push(fail('config', `${path} parses but is mode 0${mode.toString(8)}: the runner token is readable by others`, `chmod 600 ${path}`));
  } else {
    checks.push(ok('config', `${path} parses, mode 0${mode.toString(8)}`));
  }
  return config;
}

async function checkCoordinator(config: RunnerConfig, configPath: string, env: NodeJS.ProcessEnv, timeoutMs?: number): Promise<DoctorCheck> {
  // A connected daemon proves both, and probing with its token would replace its session.
  const daemon = await fetchDaemonStatus(controlSocketPath(resolveStateDir(config, configPath, env)));
  if (daemon.running && daemon.status.connected) {
    return ok('coordinator', `${config.url} reachable, token accepted (the running daemon is connected)`);
  }
  const probe = await probeCoordinator(config.url, config.token, timeoutMs);
  if (probe.ok) return ok('coordinator', `${config.url} reachable, token accepted`);
  switch (probe.kind) {
    case 'token':
      return fail('coordinator', `${config.url} refused the runner token: ${probe.message}`, 'the runner was revoked or its token is stale: register it again with a new registration token');
    case 'protocol':
      return fail('coordinator', `protocol mismatch: ${probe.message}`, 'upgrade rbtk-runner or the coordinator so both speak the same protocol');
    case 'unreachable':
      return fail('coordinator', probe.message, `check the url in ${configPath}, the network path and that rbtk-coordinator runs`);
    default:
      return fail('coordinator', `${config.url} refused the connection: ${probe.message}`, 'see the coordinator\'s log');
  }
}

async function checkDocker(docker: Docker): Promise<DoctorCheck> {
  // docker-modem's own fields; its typings leave them out. Without DOCKER_HOST
  // its socketPath is a function that picks the user's or the system's socket.
  const modem = docker.modem as unknown as { socketPath?: string | (() => Promise<string>); host?: string; port?: number };
  const socketPath = typeof modem.socketPath === 'function' ? await modem.socketPath() : modem.socketPath;
  const where = socketPath ?? (modem.host ? `${modem.host}:${modem.port ?? ''}` : 'DOCKER_HOST');
  try {
    const v = (await docker.version()) as { Version?: string; ApiVersion?: string };
    return ok('docker', `Docker Engine ${v.Version ?? '?'} (API ${v.ApiVersion ?? '?'}) at ${where}`);
  } catch (err) {
    return fail('docker', `no Docker Engine answers at ${where}: ${dockerMessage(err)}`, 'start dockerd, and run rbtk-runner as a user that may use its socket (the docker group)');
  }
}

function checkNvidiaSmi(gpus: GpuReport): DoctorCheck {
  if (gpus.warnings.length > 0 && gpus.gpus.length === 0) {
    return fail('nvidia-smi', gpus.warnings.join('; '), 'check the NVIDIA driver (nvidia-smi must answer), or remove nvidia-smi from a host without GPUs');
  }
  if (gpus.gpus.length === 0) return skip('nvidia-smi', 'not on PATH: no GPUs, so GPU jobs will not land here');
  const names = summarise(gpus.gpus.map((g) => `${g.name} ${g.memoryMiB} MiB`));
  return ok('nvidia-smi', `${gpus.gpus.length} GPU${gpus.gpus.length === 1 ? '' : 's'} (${names}), driver ${gpus.driverVersion ?? '?'}, CUDA ${gpus.cudaVersion ?? 'unknown'}`);
}

async function checkGpuSupport(gpus: GpuReport, dockerCheck: DoctorCheck, docker: Docker, config: RunnerConfig | undefined, wantsDocker: boolean): Promise<DoctorCheck> {
  if (gpus.gpus.length === 0) return skip('docker gpus', 'no GPUs to hand out');
  if (!wantsDocker) return fail('docker gpus', 'this host has GPUs but the docker executor is off: GPU jobs run only in containers', 'add docker to executors in runner.yaml');
  if (dockerCheck.status !== 'ok') return skip('docker gpus', 'not checked: Docker does not answer');
  const support = await checkDockerGpuSupport(docker, gpus.gpus.map((g) => g.uuid), { probeImage: config?.test_image });
  if (support.usable) return ok('docker gpus', 'Docker can hand GPUs to containers (nvidia device driver)');
  return fail('docker gpus', support.reason ?? 'Docker cannot hand GPUs to containers', 'install nvidia-container-toolkit (nvidia-ctk runtime configure --runtime=docker) and restart dockerd');
}

async function checkAirgapped(config: RunnerConfig | undefined, docker: Docker, dockerCheck: DoctorCheck): Promise<DoctorCheck[]> {
  if (!config) return [skip('air-gapped', 'not checked: no valid config')];
  const checks: DoctorCheck[] = [];
  const network = config.docker_network ?? 'none';
  if (config.airgapped) {
    const pulls = config.registry ? `pulls only images under ${config.registry}` : 'never pulls: images must be loaded with `docker load`';
    checks.push(ok('air-gapped', `air-gapped: ${pulls}; job containers use network ${network}`));
  } else {
    checks.push(skip('air-gapped', 'not an air-gapped runner (pulls allowed)'));
  }
  if (config.test_image) {
    if (dockerCheck.status !== 'ok') checks.push(skip('test image', `${config.test_image} not checked: Docker does not answer`));
    else if (await hasImage(docker, config.test_image).catch(() => false)) checks.push(ok('test image', `${config.test_image} is on this host`));
    else {
      const fix = config.airgapped ? `docker load -i <file with ${config.test_image}>` : `docker pull ${config.test_image}`;
      checks.push(fail('test image', `${config.test_image} is not on this host`, fix));
    }
  }
  return checks;
}

/** "8 x Tesla V100S 32510 MiB" for identical GPUs, else the list. */
function summarise(items: string[]): string {
  const counts = new Map<string, number>();
  for (const i of items) counts.set(i, (counts.get(i) ?? 0) + 1);
  return [...counts].map(([item, n]) => (n > 1 ? `${n} x ${item}` : item)).join(', ');
}
