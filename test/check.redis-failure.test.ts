/**
 * When Redis cannot be reached, the Check follows KEYWARD_REDIS_FAILURE_MODE: `local`
 * limits in this process, `deny` answers 503; the process keeps serving either way.
 */
import { startHarness } from './support/harness';
import { EnvoyClient, headerMap } from './support/envoy-client';
import { parseDenyBody } from './support/deny-body';
import { closedPort } from './support/ports';

describe.each(['local', 'deny'] as const)('Redis down, failure mode %s', (mode) => {
  it(mode === 'local' ? 'limits locally and says so in the stats' : 'denies with 503 service_unavailable, never allows', async () => {
    const h = await startHarness('sqlite', { authz: { redisUrl: `redis://127.0.0.1:${await closedPort()}`, redisFailureMode: mode } });
    const envoy = new EnvoyClient(h.app.authzPort);
    try {
      const org = await h.root.createOrganization({ name: 'r', rateLimitPerMinute: 2, monthlyQuota: 0 });
      const { secret } = await h.root.createKey({ organizationId: org.id, name: 'k' });
      const results = [];
      for (let i = 0; i < 3; i++) results.push(await envoy.check({ headers: { 'x-api-key': secret } }));
      if (mode === 'local') {
        expect(results.map((r) => r.http_response)).toEqual(['ok_response', 'ok_response', 'denied_response']);
        expect(headerMap(results[0]!.ok_response?.response_headers_to_add)['x-ratelimit-remaining']?.value).toBe('1');
        expect(results[2]!.denied_response?.status?.code).toBe(429);
        const stats = await h.root.getRateLimiterStats({});
        expect(stats.backend).toBe('redis');
        expect(stats.redisErrors).toBeGreaterThanOrEqual(3);
        expect(stats.fallbackDecisions).toBe(3);
      } else {
        for (const r of results) {
          expect(r.status?.code).toBe(14);
          expect(r.denied_response?.status?.code).toBe(503);
          expect(parseDenyBody(r.denied_response!.body!).error.code).toBe('service_unavailable');
          expect(headerMap(r.denied_response?.headers)['retry-after']?.value).toBe('1');
        }
      }
    } finally {
      envoy.close();
      await h.stop();
    }
  });
});
