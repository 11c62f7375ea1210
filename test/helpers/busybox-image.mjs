// The busybox image the tests and the benchmarks run containers of. No
// registry is reachable here, so it is assembled locally: busybox-static's
// binary and a few applet links in a root fs tar, `docker import`ed. Plain
// JavaScript so that both the TypeScript tests and bench/*.mjs import it.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const TEST_IMAGE = 'rbtk-test/busybox:latest';

/** Applets linked in the image; `trap` is a shell builtin and needs none. */
const APPLETS = ['sh', 'echo', 'cat', 'sleep', 'true', 'false', 'env', 'ls', 'printf', 'yes', 'head', 'kill', 'pwd', 'id'];

/** Where busybox-static puts its static binary. */
const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];

const run = promisify(execFile);

/** Builds `image` with the docker CLI unless it exists already; resolves to its name. */
export async function ensureBusyboxImage(image = TEST_IMAGE) {
  await run('docker', ['version', '--format', '{{.Client.Version}}']).catch(() => {
    throw new Error(`cannot build ${image}: the docker CLI is not on PATH`);
  });
  if (await run('docker', ['image', 'inspect', image]).then(() => true, () => false)) return image;
  const busybox = BUSYBOX_CANDIDATES.find((p) => existsSync(p));
  if (!busybox) throw new Error(`cannot build ${image}: no static busybox at ${BUSYBOX_CANDIDATES.join(' or ')} (apt-get install busybox-static)`);
  const root = await mkdtemp(join(tmpdir(), 'rbtk-busybox-'));
  try {
    await mkdir(join(root, 'bin'));
    await mkdir(join(root, 'tmp'));
    await copyFile(busybox, join(root, 'bin', 'busybox'));
    for (const applet of APPLETS) await symlink('busybox', join(root, 'bin', applet));
    await new Promise((resolve, reject) => {
      const child = spawn('sh', ['-c', `tar -C "$ROOT" -c . | docker import --change 'ENV PATH=/bin' - "$IMAGE"`], {
        env: { ...process.env, ROOT: root, IMAGE: image },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d.toString()));
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`docker import of ${image} failed (${code}): ${stderr.trim()}`))));
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return image;
}
