/**
 * A real HTTP receiver for webhook tests: a node:http server on 127.0.0.1:0 that
 * records every request (headers, raw body) and answers with the statuses queued by
 * the test (default 200).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Receiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** Statuses for the next requests, in order; then `fallback`. 0: never answer. */
  respond(...statuses: number[]): void;
  /** What to answer once the queue is empty (default 200); `location` is sent with 3xx. */
  fallback: number;
  location?: string;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const queue: number[] = [];
  const requests: ReceivedRequest[] = [];
  const receiver = { fallback: 200 } as Receiver;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const status = queue.shift() ?? receiver.fallback;
      if (status === 0) return; // never answers (the sender's timeout)
      res.writeHead(status, status >= 300 && status < 400 && receiver.location ? { location: receiver.location } : {});
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(receiver, {
    url: `http://127.0.0.1:${port}/hooks`,
    port,
    requests,
    respond: (...statuses: number[]) => void queue.push(...statuses),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
}

/** The webhook settings tests run with: a receiver on 127.0.0.1 needs allowInsecure. */
export const TEST_WEBHOOKS = { allowInsecure: true, timeoutMs: 5000, pauseAfterFailures: 20 };

/** Runs the app's `webhooks` task once, as its timer would, and waits for the pass to end. */
export async function tickWebhooks(h: {
  timers: { run(name: 'webhooks'): number };
  app: { webhooks: { idle(): Promise<void> } };
}): Promise<void> {
  h.timers.run('webhooks');
  await h.app.webhooks.idle();
}

/** Verifies `keyward-signature` as a receiver would (independently of src/webhooks/signature.ts). */
export function signatureValid(secret: string, body: string, header: string | string[] | undefined, nowSeconds: number): boolean {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createHmac, timingSafeEqual } = require('node:crypto') as typeof import('node:crypto');
  if (typeof header !== 'string') return false;
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(nowSeconds - t) > 300) return false;
  const expected = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(m[2]!, 'hex'));
}
