import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';

/*
 * Docker for tests, shared by the agent's tests and the end-to-end tests.
 * Tests that need a real Docker Engine call requireDocker() at collection time
 * and skip (with a console line saying why) where none answers, except under
 * CI, where Docker tests are required and a missing engine is an error.
 */

export const TEST_IMAGE = 'rbtk-test/busybox:latest';

/** Applets linked in the test image; `trap` is a shell builtin and needs none. */
const APPLETS = ['sh', 'echo', 'cat', 'sleep', 'true', 'false', 'env', 'ls', 'printf', 'yes', 'head', 'kill', 'pwd', 'id'];

/** Where busybox-static puts its static binary. */
const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];

const run = promisify(execFile);

/** True when a Docker Engine answers a ping (DOCKER_HOST, else /var/run/docker.sock). */
export async function dockerAvailable(docker: Docker = new Docker()): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether the Docker tests run here. Without an engine: false and a console
 * message, or a throw when process.env.CI is set (Docker tests are required in CI).
 */
export async function requireDocker(what = 'Docker tests'): Promise<boolean> {
  if (await dockerAvailable()) return true;
  const message = `${what}: no Docker Engine answers (DOCKER_HOST or /var/run/docker.sock)`;
  if (process.env.CI) throw new Error(`${message}; Docker tests are required under CI (run .ci/docker.sh)`);
  console.warn(`SKIPPING ${message}. Start one as DESIGN.md says ("Testing on this kind of machine") to run them.`);
  return false;
}

/**
 * Makes sure rbtk-test/busybox:latest exists: no registry is reachable, so it
 * is built locally from the host's static busybox, `docker import`ed from a
 * root fs tar. Safe to call from test files running in parallel.
 */
export async function ensureTestImage(docker: Docker = new Docker(), image = TEST_IMAGE): Promise<string> {
  if (await hasImage(docker, image)) return image;
  const busybox = BUSYBOX_CANDIDATES.find((p) => existsSync(p));
  if (!busybox) throw new Error(`cannot build ${image}: no static busybox at ${BUSYBOX_CANDIDATES.join(' or ')} (apt-get install busybox-static)`);
  const root = await mkdtemp(join(tmpdir(), 'rbtk-busybox-'));
  try {
    await mkdir(join(root, 'bin'));
    await mkdir(join(root, 'tmp'));
    await copyFile(busybox, join(root, 'bin', 'busybox'));
    for (const applet of APPLETS) await symlink('busybox', join(root, 'bin', applet));
    await importTar(root, image);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return image;
}

async function hasImage(docker: Docker, image: string): Promise<boolean> {
  try {
    await docker.getImage(image).inspect();
    return true;
  } catch {
    return false;
  }
}

/** `tar -C root -c . | docker import - image`, with the docker CLI. */
async function importTar(root: string, image: string): Promise<void> {
  await run('docker', ['version', '--format', '{{.Client.Version}}']).catch(() => {
    throw new Error(`cannot build ${image}: the docker CLI is not on PATH`);
  });
  await new Promise<void>((resolve, reject) => {
    const child = spawn('sh', ['-c', `tar -C "$ROOT" -c . | docker import --change 'ENV PATH=/bin' - "$IMAGE"`], {
      env: { ...process.env, ROOT: root, IMAGE: image },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`docker import of ${image} failed (${code}): ${stderr.trim()}`))));
  });
}

/** Containers carrying a label (`rbtk.runner=<id>`), running or not. */
export async function containersLabelled(label: string, docker: Docker = new Docker()): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [label] } });
}

/** For afterEach/afterAll: removes every container with the label, so no test leaves one running. */
export async function removeContainersLabelled(label: string, docker: Docker = new Docker()): Promise<void> {
  for (const c of await containersLabelled(label, docker)) {
    await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  }
}
