import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

type Mode = 'open' | 'cut' | 'stalled';

interface Pair {
  client: Socket;
  upstream: Socket;
}

/**
 * A TCP proxy on 127.0.0.1 in front of one upstream (the coordinator), for
 * fault tests. It forwards bytes both ways and can
 * - cut: destroy every connection and refuse new ones (a crashed peer, a RST);
 * - stall: stop reading on both sides but keep the sockets open — a partition
 *   TCP does not notice: nothing arrives, nothing errors, and when it heals
 *   what was sent meanwhile is delivered, as TCP retransmission would;
 * - stall connections: stall only the connections open now and let new ones
 *   through, as a NAT or firewall that dropped a flow's state does (half-open);
 * - delay: hold every chunk for a while before forwarding it (order kept);
 * - drop responses: cut a connection as its answer starts, after the upstream
 *   did the work (a response lost on the way back).
 */
export class TcpProxy {
  private readonly pairs = new Set<Pair>();
  private mode: Mode = 'open';
  private delayMs = 0;
  private responsesToDrop = 0;
  /** Connections accepted so far, to tell a reconnect from a kept connection. */
  accepted = 0;
  /** HTTP requests forwarded so far (request lines seen going upstream), to tell whether a client retried. */
  requests = 0;

  private constructor(
    private readonly server: Server,
    private upstreamPort: number,
    private readonly upstreamHost: string,
  ) {}

  static async start(upstream: string): Promise<TcpProxy> {
    const target = new URL(upstream);
    const server = createServer();
    const proxy = new TcpProxy(server, Number(target.port), target.hostname);
    server.on('connection', (client) => proxy.onConnection(client));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return proxy;
  }

  /** The proxy's base URL, same scheme as the upstream's (http). */
  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get connections(): number {
    return this.pairs.size;
  }

  /** Points new connections at another upstream port (a coordinator restarted elsewhere). */
  retarget(upstream: string): void {
    this.upstreamPort = Number(new URL(upstream).port);
  }

  /** Destroys every connection and refuses new ones until heal(). */
  cut(): void {
    this.mode = 'cut';
    for (const pair of [...this.pairs]) this.drop(pair);
  }

  /** Stops forwarding in both directions, keeping every socket open, until heal(). */
  stall(): void {
    this.mode = 'stalled';
    this.stallConnections();
  }

  /** Stalls the connections open now, keeping their sockets open; new connections are forwarded. heal() resumes them. */
  stallConnections(): void {
    for (const { client, upstream } of this.pairs) {
      client.pause();
      upstream.pause();
    }
  }

  /** Forwards again; after a stall, what was held back flows on. */
  heal(): void {
    this.mode = 'open';
    for (const { client, upstream } of this.pairs) {
      client.resume();
      upstream.resume();
    }
  }

  /** Every chunk waits this long before it is forwarded; 0 turns delay off. */
  delay(ms: number): void {
    this.delayMs = ms;
  }

  /** The next n answers from upstream are not forwarded: their connection is destroyed as the first byte arrives. */
  dropResponses(n: number): void {
    this.responsesToDrop = n;
  }

  async close(): Promise<void> {
    for (const pair of [...this.pairs]) this.drop(pair);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(client: Socket): void {
    if (this.mode === 'cut') {
      client.resetAndDestroy();
      return;
    }
    this.accepted++;
    const upstream = connect(this.upstreamPort, this.upstreamHost);
    const pair = { client, upstream };
    this.pairs.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    if (this.mode === 'stalled') {
      client.pause();
      upstream.pause();
    }
    client.on('data', (chunk: Buffer) => {
      this.requests += chunk.toString('latin1').match(/^[A-Z]+ \S+ HTTP\/1\.[01]\r$/gm)?.length ?? 0;
    });
    // Registered before the pipe's listener, which then finds the client destroyed and forwards nothing.
    upstream.on('data', () => {
      if (this.responsesToDrop === 0 || client.destroyed) return;
      this.responsesToDrop--;
      this.drop(pair);
    });
    this.pipe(client, upstream);
    this.pipe(upstream, client);
    // An error cuts both sides; a clean close of one is passed on as a FIN (pipe) and the pair is forgotten once both are closed.
    for (const s of [client, upstream]) {
      s.on('error', () => this.drop(pair));
      s.on('close', () => {
        if (client.destroyed && upstream.destroyed) this.pairs.delete(pair);
      });
    }
  }

  /** Forwards data and the half-close, through the delay when one is set. */
  private pipe(from: Socket, to: Socket): void {
    let chain = Promise.resolve();
    let pending = 0;
    // Each chunk is due delayMs after it arrived (latency, not a bandwidth limit); the chain keeps order.
    const later = (fn: () => void) => {
      if (this.delayMs === 0 && pending === 0) return fn();
      const due = Date.now() + this.delayMs;
      pending++;
      chain = chain.then(
        () =>
          new Promise<void>((r) =>
            setTimeout(() => {
              pending--;
              fn();
              r();
            }, Math.max(0, due - Date.now())),
          ),
      );
    };
    from.on('data', (chunk) => later(() => to.destroyed || to.write(chunk)));
    from.on('end', () => later(() => to.destroyed || to.end()));
  }

  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream.destroy();
  }
}
