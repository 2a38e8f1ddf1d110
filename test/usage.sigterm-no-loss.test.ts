/**
 * No usage is lost when keyward is stopped with SIGTERM under load: after it exits,
 * the requests stored equal the Checks it allowed.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from './support/databases';
import { adminClient } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { startServerProcess } from './support/server-process';

describe('SIGTERM under load', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
  });
  afterAll(async () => db.dispose());

  it('stores exactly the allowed Checks', async () => {
    const token = `sigterm-admin-token-${randomBytes(8).toString('hex')}`;
    const server = await startServerProcess({
      KEYWARD_DATABASE_URL: db.config.url,
      KEYWARD_HASH_SECRET: randomBytes(32).toString('hex'),
      KEYWARD_ADMIN_TOKEN: token,
      // Long intervals: everything is still buffered when the signal comes.
      KEYWARD_USAGE_FLUSH_SECONDS: '3600',
      KEYWARD_QUOTA_SYNC_SECONDS: '3600',
    });
    const admin = adminClient(server.adminPort, token);
    const org = await admin.createOrganization({ name: 'load', rateLimitPerMinute: 0, monthlyQuota: 1_000_000 });
    const { secret } = await admin.createKey({ organizationId: org.id, name: 'k', scopes: [] });
    admin.close();

    const envoys = Array.from({ length: 4 }, () => new EnvoyClient(server.authzPort));
    let allowed = 0;
    let refused = 0;
    let stop = false;
    const worker = async (e: EnvoyClient) => {
      while (!stop) {
        try {
          const r = await e.check({ headers: { 'x-api-key': secret }, path: '/v1/load?i=1' });
          if (r.http_response === 'ok_response') allowed++;
          else refused++;
        } catch {
          return; // the server stopped accepting
        }
      }
    };
    const workers = envoys.flatMap((e) => Array.from({ length: 8 }, () => worker(e)));
    // Let load build up, then signal while Checks are in flight.
    const deadline = Date.now() + 20_000;
    while (allowed < 500 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    server.proc.kill('SIGTERM');
    const code = await server.exited;
    stop = true;
    await Promise.all(workers);
    for (const e of envoys) e.close();

    expect(code).toBe(0);
    expect(refused).toBe(0);
    expect(allowed).toBeGreaterThanOrEqual(500);
    const c = new Client({ connectionString: db.config.url });
    await c.connect();
    try {
      const daily = await c.query<{ n: number }>(
        'select coalesce(sum(requests), 0)::int as n from usage_daily where organization_id = $1',
        [org.id],
      );
      const monthly = await c.query<{ n: number }>(
        'select coalesce(sum(requests), 0)::int as n from usage_monthly where organization_id = $1',
        [org.id],
      );
      const events = await c.query<{ n: number }>(
        'select count(*)::int as n from usage_events where organization_id = $1 and requests = 1',
        [org.id],
      );
      const endpoints = await c.query<{ endpoint: string }>('select distinct endpoint from usage_daily where organization_id = $1', [
        org.id,
      ]);
      const quota = await c.query<{ n: number }>(
        'select coalesce(sum(count), 0)::int as n from quota_counters where organization_id = $1',
        [org.id],
      );
      expect({ daily: daily.rows[0]!.n, monthly: monthly.rows[0]!.n, events: events.rows[0]!.n, quota: quota.rows[0]!.n }).toEqual({
        daily: allowed,
        monthly: allowed,
        events: 0, // Checks are summed, never stored as rows
        quota: allowed,
      });
      expect(endpoints.rows.map((r) => r.endpoint)).toEqual(['/v1/load']);
    } finally {
      await c.end();
    }
  });
});
