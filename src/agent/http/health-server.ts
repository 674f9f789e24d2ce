// The agent's small HTTP server for the kubelet and Prometheus:
//   GET /healthz  the process is alive and its event loop turns (liveness)
//   GET /readyz   journal and Kubernetes API answer (readiness; ?verbose lists checks)
//   GET /metrics  Prometheus text format from the agent's own registry
// Nothing here changes state, so it needs no authentication; the
// NetworkPolicy in manifests/base admits only the metrics port.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Readiness } from './readiness.ts';

export interface MetricsSource {
  expose(): Promise<{ contentType: string; body: string }>;
}

export interface HealthServerOptions {
  /** `host:port`, `:port` (all interfaces) or `[v6]:port`; port 0 picks a free one. */
  address: string;
  readiness: Readiness;
  metrics: MetricsSource;
  logger: Logger;
}

export interface HealthServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  readonly host: string;
  /** Stops accepting, ends idle keep-alive connections, waits at most `graceMs` for requests in flight. */
  close(graceMs?: number): Promise<void>;
}

export class InvalidListenAddress extends Error {
  readonly reason = 'InvalidListenAddress';
  constructor(address: string) {
    super(`invalid listen address "${address}": want host:port, :port or [v6]:port`);
    this.name = 'InvalidListenAddress';
  }
}

export function parseListenAddress(address: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(address.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port > 65_535) throw new InvalidListenAddress(address);
  const host = m[1] ?? m[2];
  return { host: host ? host : undefined, port };
}

export async function startHealthServer(o: HealthServerOptions): Promise<HealthServer> {
  const { host, port } = parseListenAddress(o.address);
  const log = o.logger.child({ component: 'http' });
  const server: Server = createServer((req, res) => {
    handle(req, res, o).catch((err: unknown) => {
      log.warn({ err: (err as Error).message, path: req.url }, 'health server request failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  // Probes and scrapes are tiny; a slow client must not hold a socket for long.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  log.info({ host: addr.address, port: addr.port }, 'health and metrics server listening');
  let closing: Promise<void> | undefined;
  return {
    port: addr.port,
    host: addr.address,
    close(graceMs = 2_000) {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, o: HealthServerOptions): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://agent');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  switch (url.pathname) {
    case '/healthz':
    case '/livez':
      send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
      return;
    case '/readyz': {
      const report = await o.readiness.evaluate();
      const verbose = url.searchParams.has('verbose');
      const lines = report.checks.map((c) => `[${c.ok ? '+' : '-'}]${c.name} ${c.ok ? 'ok' : `failed: ${c.message}`}`);
      const body = verbose || !report.ready ? `${lines.join('\n')}\n${report.ready ? 'ready' : 'not ready'}\n` : 'ok\n';
      send(res, report.ready ? 200 : 503, 'text/plain; charset=utf-8', body);
      return;
    }
    case '/metrics': {
      const { contentType, body } = await o.metrics.expose();
      send(res, 200, contentType, body);
      return;
    }
    default:
      send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
