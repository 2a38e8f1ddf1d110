/**
 * The operations HTTP endpoint (KEYWARD_HTTP_LISTEN, default 127.0.0.1:9193):
 *   GET /metrics  Prometheus exposition (src/observability/metrics.ts)
 *   GET /healthz  liveness: 200 while the process serves HTTP at all
 *   GET /readyz   readiness: 200 when the store answers and every migration is
 *                 applied, else 503; the body is JSON naming each check
 * Anything else is 404; methods other than GET and HEAD are 405. Responses carry no
 * secrets and no request data. Optional TLS: `tls` is the port's certificate set
 * (src/tls/server.ts); new connections get its current certificates, so they can be
 * replaced without a restart.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics';
import type { Readiness } from './readiness';
import type { ServerTls } from '../tls/server';

export interface OpsHttpOptions {
  metrics: Metrics;
  readiness: Readiness;
  /** Serve HTTPS with this certificate set (following its reloads); undefined: plain HTTP. */
  tls?: ServerTls;
}

export type OpsHttpServer = HttpListener;

function send(res: ServerResponse, status: number, contentType: string, body: string, head: boolean): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

export async function startOpsHttp(listen: string, o: OpsHttpOptions): Promise<OpsHttpServer> {
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', false);
    }
    const path = (req.url ?? '/').split('?')[0];
    const fail = (e: unknown) => send(res, 500, 'text/plain; charset=utf-8', `error: ${e instanceof Error ? e.name : 'unknown'}\n`, head);
    switch (path) {
      case '/metrics':
        o.metrics.expose().then((m) => send(res, 200, m.contentType, m.body, head), fail);
        return;
      case '/healthz':
        return send(res, 200, 'text/plain; charset=utf-8', 'ok\n', head);
      case '/readyz':
        o.readiness.check().then((r) => send(res, r.ready ? 200 : 503, 'application/json', `${JSON.stringify(r)}\n`, head), fail);
        return;
      default:
        return send(res, 404, 'text/plain; charset=utf-8', 'not found\n', head);
    }
  };
  return serveHttp(listen, handler, { tls: o.tls, requestTimeoutMs: 10_000 });
}

/** A started HTTP(S) server: its bound port, and close() (which also ends idle keep-alive connections). */
export interface HttpListener {
  port: number;
  server: HttpServer;
  close(): Promise<void>;
}

/**
 * Serves `handler` on `listen` (host:port): HTTPS with `tls` (new connections get its
 * current certificates; a failed handshake only ends that connection), else plain HTTP.
 * Header and keep-alive timeouts are fixed; `requestTimeoutMs` bounds a whole request.
 */
export async function serveHttp(
  listen: string,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  o: { tls?: ServerTls; requestTimeoutMs: number },
): Promise<HttpListener> {
  let server: HttpServer;
  if (o.tls) {
    const https = createHttpsServer(o.tls.httpsOptions(), handler);
    o.tls.attach(https);
    https.on('tlsClientError', () => undefined);
    server = https;
  } else {
    server = createHttpServer(handler);
  }
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = o.requestTimeoutMs;
  const { host, port } = parseListen(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** host:port, [v6]:port. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(listen);
  if (!m) throw new Error(`not host:port: ${listen}`);
  return { host: m[1]!, port: Number(m[2]) };
}
