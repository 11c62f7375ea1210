import type Docker from 'dockerode';
import type { PullPolicy } from '@rbtk/protocol';
import { dockerMessage, hasStatus } from './docker-error.js';

/**
 * Makes sure `image` is on the host as the pull policy says. Returns why the
 * job cannot run (the exact messages of the jobs spec), or undefined when the
 * image is there.
 */
export async function ensureImage(docker: Docker, image: string, policy: PullPolicy): Promise<string | undefined> {
  if (policy !== 'always' && (await hasImage(docker, image))) return undefined;
  if (policy === 'never') return `image ${image} is not on this host (pull policy never)`;
  try {
    await pull(docker, image);
    return undefined;
  } catch (err) {
    return `could not pull image ${image}: ${dockerMessage(err)}`;
  }
}

async function hasImage(docker: Docker, image: string): Promise<boolean> {
  try {
    await docker.getImage(image).inspect();
    return true;
  } catch (err) {
    if (hasStatus(err, 404)) return false;
    throw err;
  }
}

/** Pulls and waits for the end of the progress stream; an `error` event in it fails the pull. */
async function pull(docker: Docker, image: string): Promise<void> {
  const stream = (await docker.pull(image)) as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, events: { error?: string }[]) => {
      const failed = events?.find((e) => typeof e.error === 'string');
      if (err) reject(err);
      else if (failed) reject(new Error(failed.error));
      else resolve();
    });
  });
}
