import Docker from 'dockerode';
import { ensureBusyboxImage, TEST_IMAGE } from '../../../../test/helpers/busybox-image.mjs';

/*
 * Docker for tests, shared by the agent's tests and the end-to-end tests.
 * Tests that need a real Docker Engine call requireDocker() at collection time
 * and skip (with a console line saying why) where none answers, except under
 * CI, where Docker tests are required and a missing engine is an error.
 */

export { TEST_IMAGE };

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
 * is built locally (test/helpers/busybox-image.mjs, shared with the
 * benchmarks). Safe to call from test files running in parallel.
 */
export async function ensureTestImage(docker: Docker = new Docker(), image = TEST_IMAGE): Promise<string> {
  if (await hasImage(docker, image)) return image;
  return ensureBusyboxImage(image);
}

async function hasImage(docker: Docker, image: string): Promise<boolean> {
  try {
    await docker.getImage(image).inspect();
    return true;
  } catch {
    return false;
  }
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
