import type Docker from 'dockerode';
import type { PullPolicy } from '@rbtk/protocol/runner';
import { dockerMessage, hasStatus } from './docker-error.js';

export interface ImageRules {
  /** Never pull, except images named under `registry`. */
  airgapped: boolean;
  /** The on-prem registry host (registry.local:5000) an air-gapped runner may pull from. */
  registry?: string;
  /** Aborts a pull in progress (the attempt was cancelled or timed out): a stalled registry must not hold it. */
  signal?: AbortSignal;
}

/**
 * Makes sure `image` is on the host as the pull policy says. Returns why the
 * job cannot run (the exact messages of the jobs spec), or undefined when the
 * image is there. An air-gapped runner pulls nothing but on-prem images, so
 * `always` is refused for any other image and a missing one fails at once.
 */
export async function ensureImage(
  docker: Docker,
  image: string,
  policy: PullPolicy,
  rules: ImageRules = { airgapped: false },
): Promise<string | undefined> {
  const mayPull = !rules.airgapped || isFromRegistry(image, rules.registry);
  if (!mayPull && policy === 'always') {
    return `pull policy always is refused on this air-gapped host: it never pulls ${image}; use if-not-present or never, and load the image with \`docker load\``;
  }
  if (policy !== 'always' && (await hasImage(docker, image))) return undefined;
  if (!mayPull) return airgappedMissing(image);
  if (policy === 'never') return `image ${image} is not on this host (pull policy never)`;
  try {
    await pull(docker, image, rules.signal);
    return undefined;
  } catch (err) {
    return `could not pull image ${image}: ${dockerMessage(err)}`;
  }
}

/** The exact message of the air-gapped spec. */
export function airgappedMissing(image: string): string {
  return `image ${image} is not on this air-gapped host; load it with \`docker load\``;
}

/** `registry.local:5000/team/sim:1` is under registry `registry.local:5000`. */
export function isFromRegistry(image: string, registry: string | undefined): boolean {
  if (!registry) return false;
  const host = registry.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
  return host !== '' && image.startsWith(`${host}/`);
}

export async function hasImage(docker: Docker, image: string): Promise<boolean> {
  try {
    await docker.getImage(image).inspect();
    return true;
  } catch (err) {
    if (hasStatus(err, 404)) return false;
    throw err;
  }
}

/** Pulls and waits for the end of the progress stream; an `error` event in it fails the pull, and so does `signal`. */
async function pull(docker: Docker, image: string, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  const stream = (await docker.pull(image, signal ? { abortSignal: signal } : {})) as NodeJS.ReadableStream & { destroy?(): void };
  await new Promise<void>((resolve, reject) => {
    const aborted = (): void => {
      stream.destroy?.();
      reject(new Error('the pull was stopped'));
    };
    if (signal?.aborted) return aborted();
    signal?.addEventListener('abort', aborted, { once: true });
    docker.modem.followProgress(stream, (err: Error | null, events: { error?: string }[]) => {
      signal?.removeEventListener('abort', aborted);
      const failed = events?.find((e) => typeof e.error === 'string');
      if (err) reject(err);
      else if (failed) reject(new Error(failed.error));
      else resolve();
    });
  });
}
