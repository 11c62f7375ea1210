import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseHostPort } from '@rbtk/protocol/runner';
import type { Logger } from '../log.js';
import type { AgentMetrics } from './agent-metrics.js';

export interface MetricsServer {
  /** http://host:port, the actual port when 0 was asked for. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * `metrics_listen`: plain HTTP, no token, read-only. /metrics (Prometheus
 * text), /healthz (200 while the process runs), /readyz (200 while connected
 * to the coordinator, else 503 with the reason).
 */
export async function startMetricsServer(listen: string, metrics: AgentMetrics, logger: Logger): Promise<MetricsServer> {
  const address = parseHostPort(listen);
  if (!address) throw new Error(`metrics_listen: invalid address "${listen}": write it as HOST:PORT, e.g. 127.0.0.1:9464`);
  const server = createServer((req, res) => void handle(req, res, metrics, logger));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`metrics_listen ${listen}: ${err.message}`)));
    server.listen(address.port, address.host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const url = `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
  logger.info({ url }, 'metrics listening');
  return { url, close: () => closeServer(server) };
}

async function handle(req: IncomingMessage, res: ServerResponse, metrics: AgentMetrics, logger: Logger): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://metrics').pathname;
  if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: { code: 'bad_request', message: 'only GET' } });
  try {
    switch (path) {
      case '/metrics': {
        const text = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' }).end(text);
        return;
      }
      case '/healthz':
        return json(res, 200, { ok: true });
      case '/readyz': {
        const { ready, body } = metrics.readiness();
        return json(res, ready ? 200 : 503, body);
      }
      default:
        return json(res, 404, { error: { code: 'not_found', message: `no endpoint ${path}: try /metrics, /healthz or /readyz` } });
    }
  } catch (err) {
    logger.error({ err: (err as Error).message, path }, 'metrics request failed');
    json(res, 500, { error: { code: 'internal', message: (err as Error).message } });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
