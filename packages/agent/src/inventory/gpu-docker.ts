import type Docker from 'dockerode';
import { dockerMessage } from '../executors/docker-error.js';

export interface GpuSupport {
  usable: boolean;
  /** Why not, when usable is false. */
  reason?: string;
}

export interface GpuSupportOptions {
  /** The image the probe container is created from; default: any image already on the host. */
  probeImage?: string;
}

export const NO_TOOLKIT_REASON =
  'Docker cannot hand GPUs to containers: install nvidia-container-toolkit and restart dockerd';

/** The Engine's words when no device driver serves a request (daemon/devices.go). */
const NO_DRIVER = /could not select device driver/i;

/**
 * Whether Docker can give GPUs to containers, as the jobs will ask for them
 * (a DeviceRequest with Driver "nvidia"). Docker registers that driver when
 * nvidia-container-runtime-hook is on dockerd's PATH at start, and nothing in
 * `docker info` says so; a registered `nvidia` runtime does show there. So:
 * Runtimes first, else ask the Engine itself by starting a throwaway
 * container with such a request. Its command does not exist on purpose: the
 * Engine refuses the device request before it looks for the command, so
 * "could not select device driver" means no driver, and any other answer
 * means the request got past it. Never throws.
 */
export async function checkDockerGpuSupport(docker: Docker, gpuUuids: string[], options: GpuSupportOptions = {}): Promise<GpuSupport> {
  let info: { Runtimes?: Record<string, unknown> };
  try {
    info = (await docker.info()) as typeof info;
  } catch (err) {
    return { usable: false, reason: `Docker does not answer, so it cannot hand GPUs to containers: ${dockerMessage(err)}` };
  }
  if (info.Runtimes && 'nvidia' in info.Runtimes) return { usable: true };

  const image = options.probeImage ?? (await anyLocalImage(docker));
  if (!image) {
    return { usable: false, reason: 'cannot check whether Docker can hand GPUs to containers: no image on this host to probe with' };
  }
  let container: Docker.Container | undefined;
  try {
    container = await docker.createContainer({
      name: `rbtk-gpu-probe-${process.pid}-${Date.now()}`,
      Image: image,
      Entrypoint: ['/rbtk-gpu-probe-no-such-program'],
      Cmd: [],
      Labels: { 'rbtk.probe': 'gpu' },
      HostConfig: {
        NetworkMode: 'none',
        DeviceRequests: [{ Driver: 'nvidia', DeviceIDs: gpuUuids.slice(0, 1), Capabilities: [['gpu']] }],
      },
    });
    await container.start();
    return { usable: true };
  } catch (err) {
    const message = dockerMessage(err);
    if (NO_DRIVER.test(message)) return { usable: false, reason: NO_TOOLKIT_REASON };
    if (!container) return { usable: false, reason: `cannot check whether Docker can hand GPUs to containers: ${message}` };
    // The toolkit's hook ran and failed: the driver is registered but GPUs will not reach containers.
    if (/nvidia-container-cli|nvidia-container-runtime/i.test(message)) {
      return { usable: false, reason: `the NVIDIA container toolkit fails: ${message}` };
    }
    return { usable: true };
  } finally {
    await container?.remove({ force: true }).catch(() => undefined);
  }
}

async function anyLocalImage(docker: Docker): Promise<string | undefined> {
  try {
    const images = await docker.listImages();
    const tagged = images.flatMap((i) => i.RepoTags ?? []).find((t) => t !== '<none>:<none>');
    return tagged ?? images[0]?.Id;
  } catch {
    return undefined;
  }
}
