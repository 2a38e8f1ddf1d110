/** keyward's operations server: /metrics, /readyz and /healthz. */
import { get as httpGet } from 'node:http';
import { fail, tally } from './state';

export function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
  });
}

/** Prometheus exposition text: `name{labels}` → value. */
export function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    const r = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (r) m.set(r[1]!, Number(r[2]));
  }
  return m;
}

/** /metrics, /readyz and /healthz once; the metrics, or undefined when /metrics failed. */
export async function scrape(port: number): Promise<Map<string, number> | undefined> {
  let metrics: Map<string, number> | undefined;
  const probes: [string, (r: { status: number; body: string }) => string | undefined][] = [
    [
      '/metrics',
      (r) =>
        r.status === 200 && r.body.includes('keyward_nodejs_eventloop_lag_p99_seconds')
          ? void (metrics = parseMetrics(r.body))
          : `/metrics: ${r.status}`,
    ],
    [
      '/readyz',
      (r) =>
        r.status === 200 && (JSON.parse(r.body) as { ready?: boolean }).ready === true
          ? undefined
          : `/readyz: ${r.status} ${r.body.trim().slice(0, 200)}`,
    ],
    ['/healthz', (r) => (r.status === 200 ? undefined : `/healthz: ${r.status}`)],
  ];
  for (const [path, judge] of probes) {
    tally.ops.sent++;
    try {
      const wrong = judge(await get(port, path));
      if (wrong === undefined) tally.ops.ok++;
      else fail('ops', wrong);
    } catch (e) {
      fail('ops', `${path}: ${(e as Error).message}`);
    }
  }
  return metrics;
}
