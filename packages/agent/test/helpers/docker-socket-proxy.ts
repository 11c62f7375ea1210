import { linkSync, renameSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';

/** The real Engine's socket: DOCKER_HOST when it names a unix socket, else Docker's default. */
export function dockerSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.DOCKER_HOST;
  return host?.startsWith('unix://') ? host.slice('unix://'.length) : '/var/run/docker.sock';
}

/**
 * A unix socket in front of the real Docker socket, for tests of a dockerd
 * that goes away without restarting the real one. down() does what a dockerd
 * that dies does: every open connection drops (a wait in progress, the attach
 * stream, idle keep-alive ones) and its socket file stays with nobody
 * listening (connect: ECONNREFUSED). up() listens again.
 */
export class DockerSocketProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** Connections accepted so far. */
  accepted = 0;

  private constructor(
    readonly path: string,
    private readonly upstream: string,
  ) {}

  static async start(path: string, upstream = dockerSocketPath()): Promise<DockerSocketProxy> {
    const proxy = new DockerSocketProxy(path, upstream);
    await proxy.up();
    return proxy;
  }

  async down(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    // Closing the server unlinks its file: a hard link keeps the (now dead) socket file where it was.
    const stale = `${this.path}.stale`;
    linkSync(this.path, stale);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    renameSync(stale, this.path);
    await closed;
  }

  async up(): Promise<void> {
    if (this.server) return;
    rmSync(this.path, { force: true });
    const server = createServer((client) => this.forward(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    this.server = server;
  }

  async close(): Promise<void> {
    await this.down();
    rmSync(this.path, { force: true });
  }

  private forward(client: Socket): void {
    this.accepted++;
    const upstream = connect(this.upstream);
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      this.sockets.add(from);
      from.pipe(to);
      from.on('error', () => to.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        to.destroy();
      });
    }
  }
}
