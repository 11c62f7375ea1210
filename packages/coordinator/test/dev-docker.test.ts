import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dockerReachable } from '../src/dev/docker.js';
import { tempDir } from './helpers.js';

let dir: { dir: string; cleanup: () => void } | undefined;
let server: Server | undefined;
let accepted: Socket[] = [];
const savedDockerHost = process.env.DOCKER_HOST;

afterEach(async () => {
  if (savedDockerHost === undefined) delete process.env.DOCKER_HOST;
  else process.env.DOCKER_HOST = savedDockerHost;
  for (const socket of accepted) socket.destroy();
  accepted = [];
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
  dir?.cleanup();
});

/** A socket where something accepts connections and never answers (a hung dockerd, a wrong DOCKER_HOST). */
async function silentEngine(): Promise<{ connections: Socket[]; closed: () => number }> {
  dir = tempDir();
  let closed = 0;
  server = createServer((socket) => {
    accepted.push(socket);
    socket.resume(); // reads (and drops) the request, so that the client's hang-up is seen
    socket.on('close', () => closed++);
  });
  const file = path.join(dir.dir, 'docker.sock');
  await new Promise<void>((resolve) => server!.listen(file, resolve));
  process.env.DOCKER_HOST = `unix://${file}`;
  return { connections: accepted, closed: () => closed };
}

describe('dockerReachable (the dev command asks it before it offers docker jobs)', () => {
  it('says no, and why, when the Engine never answers, and hangs up on it instead of holding the connection open', async () => {
    const { connections, closed } = await silentEngine();
    const started = performance.now();
    const answer = await dockerReachable(300);
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(answer).toEqual({ ok: false, reason: 'docker ping: the Docker Engine did not answer within 300ms (request aborted)' });
    expect(connections).toHaveLength(1);
    // The aborted request closes its socket: nothing of it keeps the process alive.
    await expect.poll(closed, { timeout: 2_000 }).toBe(1);
  });

  it('says no, with the error, when nothing listens there', async () => {
    dir = tempDir();
    process.env.DOCKER_HOST = `unix://${path.join(dir.dir, 'absent.sock')}`;
    const answer = await dockerReachable(1_000);
    expect(answer.ok).toBe(false);
    expect(answer.reason).toMatch(/ENOENT|ECONNREFUSED/);
  });
});
