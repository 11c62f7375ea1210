import { rmSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * What the endpoint does with each request: `hang` takes it and never
 * answers (a hung dockerd); `hang-create` does that to container creates
 * only and passes the rest on; `forward` passes everything on.
 */
export type DockerEndpointMode = 'hang' | 'hang-create' | 'forward';

/**
 * A Docker Engine endpoint on a unix socket, in front of the real one, that
 * can be made to hang: a coordinator given it as DOCKER_HOST meets a dockerd
 * that accepts connections and never answers, and then a working one, at the
 * test's word (`mode`, read at each request).
 */
export class DockerEndpoint {
  mode: DockerEndpointMode = 'hang';
  /** Requests taken and never answered, as "METHOD path". */
  readonly held: string[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly path: string,
    private readonly upstream = '/var/run/docker.sock',
  ) {}

  get dockerHost(): string {
    return `unix://${this.path}`;
  }

  async listen(): Promise<void> {
    rmSync(this.path, { force: true });
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.path, resolve));
    this.server = server;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const isCreate = req.method === 'POST' && /\/containers\/create(\?|$)/.test(req.url ?? '');
    if (this.mode === 'hang' || (this.mode === 'hang-create' && isCreate)) {
      // Read and never answered: only the client's own deadline ends it.
      this.held.push(`${req.method} ${req.url}`);
      req.resume();
      return;
    }
    const upstream = request({ socketPath: this.upstream, path: req.url, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
    rmSync(this.path, { force: true });
  }
}
