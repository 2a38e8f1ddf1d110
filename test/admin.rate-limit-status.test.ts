/**
 * GetRateLimitStatus and ResetRateLimit in both KEYWARD_RATE_LIMIT_MODEs, in memory and
 * in Redis, through real Checks; and the strict mode holds the limit across a minute edge.
 */
import { EnvoyClient } from './support/envoy-client';
import { startHarness, type Harness } from './support/harness';
import { redisRequired, redisAvailableSync, testRedisUrl } from './support/redis';

const withRedis = redisRequired() || redisAvailableSync();
interface Case {
  mode: 'strict' | 'approximate';
  backend: 'memory' | 'redis';
  /** resetSeconds after 3 of 3 at a minute start: 65 s strict, 80 s approximate. */
  reset: number;
}
const memoryCases: Case[] = [
  { mode: 'strict', backend: 'memory', reset: 65 },
  { mode: 'approximate', backend: 'memory', reset: 80 },
];
const redisCases: Case[] = [
  { mode: 'strict', backend: 'redis', reset: 65 },
  { mode: 'approximate', backend: 'redis', reset: 80 },
];
const cases = withRedis ? [...memoryCases, ...redisCases] : memoryCases;

describe.each(cases)('rate-limit status and reset, $mode mode in $backend', ({ mode, backend, reset }) => {
  let h: Harness;
  let envoy: EnvoyClient;
  beforeAll(async () => {
    h = await startHarness('sqlite', {
      authz: { rateLimitMode: mode, ...(backend === 'redis' ? { redisUrl: testRedisUrl(), redisFailureMode: 'deny' as const } : {}) },
    });
    envoy = new EnvoyClient(h.app.authzPort);
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
  });

  it('reports the window the Checks left, and a reset frees the key at once', async () => {
    const org = await h.root.createOrganization({ name: `status-${mode}-${backend}`, rateLimitPerMinute: 3 });
    const { key, secret } = await h.root.createKey({ organizationId: org.id, name: 'k', scopes: [] });
    const check = () => envoy.check({ headers: { 'x-api-key': secret } });
    h.clock.set(Date.UTC(2030, 2, 10, 12, 0, 0));
    expect(await h.root.getRateLimitStatus({ keyId: key!.id })).toMatchObject({ limit: 3, remaining: 3, resetSeconds: 0 });
    for (let i = 0; i < 3; i++) expect((await check()).http_response).toBe('ok_response');
    expect((await check()).denied_response?.status?.code).toBe(429);
    expect(await h.root.getRateLimitStatus({ keyId: key!.id })).toMatchObject({ limit: 3, remaining: 0, resetSeconds: reset });
    expect(await h.root.getRateLimiterStats({})).toMatchObject({ backend });
    expect(await h.root.resetRateLimit({ keyId: key!.id })).toMatchObject({ limit: 3, remaining: 3 });
    expect(await h.root.getRateLimitStatus({ keyId: key!.id })).toMatchObject({ remaining: 3, resetSeconds: 0 });
    expect((await check()).http_response).toBe('ok_response');
  });

  it(
    mode === 'strict'
      ? 'never allows more than the limit in 60 s across a minute edge'
      : 'may allow up to 2N - 1 in 60 s across a minute edge',
    async () => {
      const org = await h.root.createOrganization({ name: `edge-${mode}-${backend}`, rateLimitPerMinute: 3 });
      const { secret } = await h.root.createKey({ organizationId: org.id, name: 'k', scopes: [] });
      const check = async () => (await envoy.check({ headers: { 'x-api-key': secret } })).http_response === 'ok_response';
      const allowedAt: number[] = [];
      h.clock.set(Date.UTC(2030, 2, 11, 12, 0, 59, 900));
      for (let i = 0; i < 3; i++) if (await check()) allowedAt.push(h.clock.now().getTime());
      for (let s = 0; s < 59; s++) {
        h.clock.set(Date.UTC(2030, 2, 11, 12, 1, s, 0));
        if (await check()) allowedAt.push(h.clock.now().getTime());
      }
      expect(allowedAt.every((t) => t - allowedAt[0]! < 60_000)).toBe(true);
      if (mode === 'strict') expect(allowedAt).toHaveLength(3);
      else expect(allowedAt.length).toBeGreaterThan(3);
    },
  );
});
