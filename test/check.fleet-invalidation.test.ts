/**
 * Fleet-wide invalidation: two keyward processes on one PostgreSQL. A change made
 * through KeyAdmin on one is enforced by the other within 1 second, although its cache
 * would keep the key for minutes. Polls with a deadline; never sleeps a fixed time.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { adminPgUrl, createTestDatabase, type TestDatabase } from './support/databases';
import { adminClient, type AdminClient } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { startServerProcess, type ServerProcess } from './support/server-process';
import { parseDenyBody } from './support/deny-body';

describe('KeyAdmin changes reach every process', () => {
  let db: TestDatabase;
  let a: ServerProcess;
  let b: ServerProcess;
  let admin: AdminClient;
  let envoyB: EnvoyClient;
  let orgId: string;
  const token = `fleet-admin-token-${randomBytes(8).toString('hex')}`;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    const env = {
      KEYWARD_DATABASE_URL: db.config.url,
      KEYWARD_HASH_SECRET: randomBytes(32).toString('hex'),
      KEYWARD_ADMIN_TOKEN: token,
      KEYWARD_CACHE_TTL_SECONDS: '600',
    };
    a = await startServerProcess(env);
    b = await startServerProcess(env);
    admin = adminClient(a.adminPort, token);
    envoyB = new EnvoyClient(b.authzPort);
    orgId = (await admin.createOrganization({ name: 'fleet', rateLimitPerMinute: 0 })).id;
  });
  afterAll(async () => {
    envoyB.close();
    admin.close();
    await a.stop('SIGKILL');
    await b.stop('SIGKILL');
    await db.dispose();
  });

  /** A key cached on B (its first Check there is allowed). */
  async function cachedOnB(scopes = ['chat'], org = orgId) {
    const k = await admin.createKey({ organizationId: org, name: 'k', scopes });
    const r = await envoyB.check({ headers: { 'x-api-key': k.secret }, contextExtensions: { required_scopes: scopes[0] ?? '' } });
    expect(r.http_response).toBe('ok_response');
    return k;
  }

  /** Polls B until the Check is denied with `code`; returns the milliseconds it took. */
  async function deniedOnBWithin(deadlineMs: number, secret: string, code: string, ext: Record<string, string> = {}): Promise<number> {
    const started = Date.now();
    for (;;) {
      const r = await envoyB.check({ headers: { 'x-api-key': secret }, contextExtensions: ext });
      if (r.http_response === 'denied_response') {
        expect(parseDenyBody(r.denied_response!.body!).error.code).toBe(code);
        return Date.now() - started;
      }
      if (Date.now() - started > deadlineMs) throw new Error(`still allowed on the other process after ${deadlineMs} ms`);
      await new Promise((res) => setTimeout(res, 10));
    }
  }

  it('a revoke', async () => {
    const k = await cachedOnB();
    await admin.revokeKey({ id: k.key!.id, reason: 'leaked' });
    expect(await deniedOnBWithin(1000, k.secret, 'revoked_api_key')).toBeLessThanOrEqual(1000);
  });

  it('a scope update', async () => {
    const k = await cachedOnB(['chat']);
    await admin.updateKey({ id: k.key!.id, scopes: { values: ['other'] } });
    expect(await deniedOnBWithin(1000, k.secret, 'insufficient_scope', { required_scopes: 'chat' })).toBeLessThanOrEqual(1000);
  });

  it('a rotate (the old key without grace)', async () => {
    const k = await cachedOnB();
    const rotated = await admin.rotateKey({ id: k.key!.id, gracePeriodSeconds: 0 });
    expect(await deniedOnBWithin(1000, k.secret, 'expired_api_key')).toBeLessThanOrEqual(1000);
    expect((await envoyB.check({ headers: { 'x-api-key': rotated.secret } })).http_response).toBe('ok_response');
  });

  it('an organization deactivation', async () => {
    const org = await admin.createOrganization({ name: 'fleet-2', rateLimitPerMinute: 0 });
    const k = await cachedOnB(['chat'], org.id);
    await admin.updateOrganization({ id: org.id, active: false });
    expect(await deniedOnBWithin(1000, k.secret, 'organization_inactive')).toBeLessThanOrEqual(1000);
  });

  /** Polls B until the Check is allowed again; returns the milliseconds it took. */
  async function allowedOnBWithin(deadlineMs: number, secret: string): Promise<number> {
    const started = Date.now();
    for (;;) {
      const r = await envoyB.check({ headers: { 'x-api-key': secret } });
      if (r.http_response === 'ok_response') return Date.now() - started;
      if (Date.now() - started > deadlineMs) throw new Error(`still denied on the other process after ${deadlineMs} ms`);
      await new Promise((res) => setTimeout(res, 10));
    }
  }

  it('a disable, then an enable', async () => {
    const k = await cachedOnB();
    await admin.updateKey({ id: k.key!.id, enabled: false });
    expect(await deniedOnBWithin(1000, k.secret, 'disabled_api_key')).toBeLessThanOrEqual(1000);
    await admin.updateKey({ id: k.key!.id, enabled: true });
    expect(await allowedOnBWithin(1000, k.secret)).toBeLessThanOrEqual(1000);
  });

  it('an organization deletion, for every key of it', async () => {
    const org = await admin.createOrganization({ name: 'fleet-3', rateLimitPerMinute: 0 });
    const k1 = await cachedOnB(['chat'], org.id);
    const k2 = await cachedOnB(['chat'], org.id);
    const other = await cachedOnB(); // another organization's key is untouched
    const r = await admin.deleteOrganization({ organizationId: org.id, reason: 'customer left' });
    expect(r.revokedKeys).toBe(2);
    expect(await deniedOnBWithin(1000, k1.secret, 'revoked_api_key')).toBeLessThanOrEqual(1000);
    expect(await deniedOnBWithin(1000, k2.secret, 'revoked_api_key')).toBeLessThanOrEqual(1000);
    expect((await envoyB.check({ headers: { 'x-api-key': other.secret } })).http_response).toBe('ok_response');
  });

  it('survives a dropped notification connection: reconnects, and never trusts its cache long meanwhile', async () => {
    const k = await cachedOnB();
    const c = new Client({ connectionString: adminPgUrl() });
    await c.connect();
    try {
      const dbName = new URL(db.config.url).pathname.slice(1);
      const killed = await c.query(
        `select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and application_name = 'keyward-listener'`,
        [dbName],
      );
      expect(killed.rowCount).toBe(2);
      await admin.revokeKey({ id: k.key!.id, reason: 'during the outage' });
      // Missed notification: the short unnotified lifetime (2 s) or the reconnect clears it.
      await deniedOnBWithin(5000, k.secret, 'revoked_api_key');
      // The listeners are back.
      const deadline = Date.now() + 10_000;
      for (;;) {
        const n = await c.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity where datname = $1 and application_name = 'keyward-listener'`,
          [dbName],
        );
        if (n.rows[0]!.n === 2) break;
        if (Date.now() > deadline) throw new Error('listeners did not reconnect');
        await new Promise((res) => setTimeout(res, 50));
      }
      expect(b.stdout()).toContain('change notifications lost');
      // And notifications work again.
      const k2 = await cachedOnB();
      await admin.revokeKey({ id: k2.key!.id, reason: 'after' });
      expect(await deniedOnBWithin(1000, k2.secret, 'revoked_api_key')).toBeLessThanOrEqual(1000);
    } finally {
      await c.end();
    }
  });
});
