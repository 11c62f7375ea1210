// The busybox image hosted docker members run in for the benchmarks: the
// same one the tests build (packages/agent/test/helpers/docker.ts), assembled
// locally since no registry is reachable; node and rbtk-runner come from this
// host, bind-mounted (rbtk-coordinator --hosted-docker-agent host).
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const BENCH_IMAGE = 'rbtk-test/busybox:latest';
const APPLETS = ['sh', 'echo', 'cat', 'sleep', 'true', 'false', 'env', 'ls', 'printf', 'yes', 'head', 'kill', 'pwd', 'id'];
const run = promisify(execFile);

/** Whether the docker CLI reaches an engine here. */
export async function dockerAvailable() {
  try {
    await run('docker', ['version', '--format', '{{.Server.Version}}']);
    return true;
  } catch {
    return false;
  }
}

/** Builds BENCH_IMAGE from a static busybox unless it exists; its name. */
export async function ensureBenchImage(image = BENCH_IMAGE) {
  if (await run('docker', ['image', 'inspect', image]).then(() => true, () => false)) return image;
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  if (!busybox) throw new Error(`cannot build ${image}: no static busybox (apt-get install busybox-static)`);
  const root = await mkdtemp(join(tmpdir(), 'rbtk-bench-busybox-'));
  try {
    await mkdir(join(root, 'bin'));
    await mkdir(join(root, 'tmp'));
    await copyFile(busybox, join(root, 'bin', 'busybox'));
    for (const applet of APPLETS) await symlink('busybox', join(root, 'bin', applet));
    await new Promise((resolve, reject) => {
      const child = spawn('sh', ['-c', `tar -C "$ROOT" -c . | docker import --change 'ENV PATH=/bin' - "$IMAGE"`], {
        env: { ...process.env, ROOT: root, IMAGE: image },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`docker import of ${image} failed (${code})`))));
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return image;
}
