/**
 * The operations HTTP endpoint on a real keyward: /healthz, /readyz, /metrics after
 * real Checks and KeyAdmin calls (counts by outcome code, latency histogram, cache,
 * limiter, usage, admin calls by method and code), every metric named keyward_*,
 * 404/405; and Readiness on its own against probes that fail, hang or see pending
 * migrations, calling onChange on each flip. gRPC health following it on a real server:
 * grpc.health-readiness.test.ts.
 */
import { request } from 'node:http';
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { Readiness } from '../src/observability/readiness';

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample line `name{labels} value` (labels as written, or none). */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe.each(DIALECTS)('operations HTTP endpoint on %s', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;
  let port: number;
  beforeAll(async () => {
    h = await startHarness(dialect, { httpListen: '127.0.0.1:0' });
    envoy = new EnvoyClient(h.app.authzPort);
    port = h.app.httpPort!;
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
  });

  it('answers /healthz and /readyz (store reachable, migrations applied)', async () => {
    expect(await get(port, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    const r = await get(port, '/readyz');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ ready: true, checks: { store: 'ok', migrations: 'ok' } });
  });

  it('counts Check decisions by code, times them, and counts cache, limiter and admin calls', async () => {
    const org = await h.root.createOrganization({ name: 'Metrics', rateLimitPerMinute: 2 });
    const { secret } = await h.root.createKey({ organizationId: org.id, name: 'k' });
    await expect(h.client('not-a-token').listOrganizations({})).rejects.toBeDefined();
    for (let i = 0; i < 3; i++) await envoy.check({ headers: { 'x-api-key': secret } }); // ok, ok, rate_limit_exceeded
    await envoy.check({}); // missing_api_key
    const m = await get(port, '/metrics');
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/^text\/plain/);
    expect(sample(m.body, 'keyward_check_decisions_total', 'code="ok"')).toBe(2);
    expect(sample(m.body, 'keyward_check_decisions_total', 'code="rate_limit_exceeded"')).toBe(1);
    expect(sample(m.body, 'keyward_check_decisions_total', 'code="missing_api_key"')).toBe(1);
    expect(sample(m.body, 'keyward_check_duration_seconds_count')).toBe(4);
    expect(sample(m.body, 'keyward_check_duration_seconds_bucket', 'le="+Inf"')).toBe(4);
    expect(sample(m.body, 'keyward_cache_misses_total')).toBe(1);
    expect(sample(m.body, 'keyward_cache_hits_total')).toBe(2);
    expect(sample(m.body, 'keyward_cache_entries')).toBe(1);
    expect(sample(m.body, 'keyward_ratelimit_allowed_total')).toBe(2);
    expect(sample(m.body, 'keyward_ratelimit_limited_total')).toBe(1);
    expect(sample(m.body, 'keyward_admin_calls_total', 'method="CreateKey",code="ok"')).toBe(1);
    expect(sample(m.body, 'keyward_admin_calls_total', 'method="ListOrganizations",code="invalid_credentials"')).toBe(1);
    expect(sample(m.body, 'keyward_admin_auth_failures_total')).toBe(1);
    await h.app.usage.flush();
    const after = await get(port, '/metrics');
    expect(sample(after.body, 'keyward_usage_events_written_total')).toBe(2);
    expect(sample(after.body, 'keyward_quota_errors_total')).toBe(0);
    expect(sample(after.body, 'keyward_usage_buffer_depth')).toBe(0);
    expect(sample(after.body, 'keyward_usage_flushes_total')).toBeGreaterThanOrEqual(1);
    // Scrapes do not double count.
    expect(sample(after.body, 'keyward_check_decisions_total', 'code="ok"')).toBe(2);
    expect(sample(after.body, 'keyward_cache_hits_total')).toBe(2);
    const names = [...after.body.matchAll(/^# TYPE (\S+) /gm)].map((x) => x[1]!);
    expect(names.length).toBeGreaterThan(20);
    expect(names.filter((n) => !n.startsWith('keyward_'))).toEqual([]);
    expect(after.body).not.toContain(secret);
  });

  it('answers 404 for other paths and 405 for other methods', async () => {
    expect((await get(port, '/nope')).status).toBe(404);
    expect((await get(port, '/metrics', 'POST')).status).toBe(405);
    expect(await get(port, '/healthz', 'HEAD')).toMatchObject({ status: 200, body: '' });
  });
});

describe('Readiness', () => {
  it('is ready only when the store answers and no migration is pending, and reports each by name', async () => {
    let now = 0;
    let ping: () => Promise<void> = () => Promise.resolve();
    let pending = ['0002_next'];
    const changes: boolean[] = [];
    const r = new Readiness(
      { ping: () => ping(), pendingMigrations: () => Promise.resolve(pending) },
      { cacheMs: 1000, timeoutMs: 50, now: () => now, onChange: (ready) => changes.push(ready) },
    );
    expect(await r.check()).toEqual({ ready: false, checks: { store: 'ok', migrations: 'pending' } });
    pending = [];
    // Cached for cacheMs.
    expect((await r.check()).ready).toBe(false);
    now += 1000;
    expect(await r.check()).toEqual({ ready: true, checks: { store: 'ok', migrations: 'ok' } });
    ping = () => Promise.reject(new Error('connection refused to postgres://user:secret@db'));
    now += 1000;
    const down = await r.check();
    expect(down).toEqual({ ready: false, checks: { store: 'unreachable', migrations: 'ok' } });
    expect(JSON.stringify(down)).not.toContain('secret');
    ping = () => new Promise(() => undefined);
    now += 1000;
    expect(await r.check()).toEqual({ ready: false, checks: { store: 'timeout', migrations: 'ok' } });
    ping = () => Promise.resolve();
    now += 1000;
    expect((await r.check()).ready).toBe(true);
    expect(changes).toEqual([false, true, false, true]);
  });
});
