// The busybox image hosted docker members run in for the benchmarks: the one
// the tests use (test/helpers/busybox-image.mjs builds it, locally, since no
// registry is reachable); node and rbtk-runner come from this host,
// bind-mounted (rbtk-coordinator --hosted-docker-agent host).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ensureBusyboxImage, TEST_IMAGE } from '../test/helpers/busybox-image.mjs';

export const BENCH_IMAGE = TEST_IMAGE;
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

/** Builds BENCH_IMAGE unless it exists; its name. */
export const ensureBenchImage = (image = BENCH_IMAGE) => ensureBusyboxImage(image);
