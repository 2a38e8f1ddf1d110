/**
 * Two keyward processes sharing one Redis (and one PostgreSQL) share one key's rate
 * limit and one organization's quota exactly.
 */
import { randomBytes } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from './support/databases';
import { adminClient } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { describeRedis, testRedisUrl } from './support/redis';
import { startServerProcess, type ServerProcess } from './support/server-process';
import { parseDenyBody } from './support/deny-body';

describeRedis('two keyward processes on one Redis', () => {
  let db: TestDatabase;
  const servers: ServerProcess[] = [];
  const token = `replica-admin-token-${randomBytes(8).toString('hex')}`;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    const env = {
      KEYWARD_DATABASE_URL: db.config.url,
      KEYWARD_HASH_SECRET: randomBytes(32).toString('hex'),
      KEYWARD_ADMIN_TOKEN: token,
      KEYWARD_REDIS_URL: testRedisUrl(),
    };
    // One after the other, so that only the first applies the migrations.
    servers.push(await startServerProcess(env));
    servers.push(await startServerProcess(env));
  });
  afterAll(async () => {
    for (const s of servers) await s.stop('SIGKILL');
    await db.dispose();
  });

  it('allows a key exactly its limit across both, and counts the quota once', async () => {
    const [a, b] = servers as [ServerProcess, ServerProcess];
    const admin = adminClient(a.adminPort, token);
    const org = await admin.createOrganization({ name: 'replicated', rateLimitPerMinute: 5, monthlyQuota: 1000 });
    const { secret, key } = await admin.createKey({ organizationId: org.id, name: 'shared', scopes: [] });
    const envoys = [new EnvoyClient(a.authzPort), new EnvoyClient(b.authzPort)];
    try {
      const outcomes: string[] = [];
      for (let i = 0; i < 8; i++) {
        const r = await envoys[i % 2]!.check({ headers: { authorization: `Bearer ${secret}` } });
        outcomes.push(r.http_response === 'ok_response' ? 'ok' : parseDenyBody(r.denied_response!.body!).error.code);
      }
      // Exactly 5 in all, alternating replicas. (Across a minute boundary the sliding
      // window still weighs the previous minute almost fully, so this holds there too.)
      expect(outcomes).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'rate_limit_exceeded', 'rate_limit_exceeded', 'rate_limit_exceeded']);
      const allowed = 5;
      // Both replicas see the same state in Redis.
      const adminB = adminClient(b.adminPort, token);
      const sa = await admin.getRateLimitStatus({ keyId: key!.id });
      const sb = await adminB.getRateLimitStatus({ keyId: key!.id });
      expect(sb.remaining).toBe(sa.remaining);
      // The quota counted every allowed Check once, whichever replica served it.
      expect((await adminB.getQuota({ organizationId: org.id })).used).toBe(allowed);
      adminB.close();
    } finally {
      for (const e of envoys) e.close();
      admin.close();
    }
  });
});
