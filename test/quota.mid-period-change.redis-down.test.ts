/**
 * A quota set mid-period while Redis is down (KEYWARD_REDIS_FAILURE_MODE=deny): the
 * update is stored but answers service_unavailable, because the period's counter could
 * not be raised to what was used; the Checks allowed meanwhile (no quota yet) are kept;
 * repeating the same update once Redis is back finishes it, and the quota then allows
 * exactly what remains. Redis is cut through a TCP proxy the test controls.
 */
import { startHarness, failure, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { describeRedis, testRedisUrl } from './support/redis';
import { TcpProxy } from './support/tcp-proxy';
import type { RedisQuotaCounter } from '../src/limits/quota-redis';

const YEAR = new Date().getUTCFullYear() + 1;
const NOW = Date.UTC(YEAR, 4, 10, 12);

describeRedis('a quota set while Redis is down', () => {
  let proxy: TcpProxy;
  let h: Harness;
  let envoy: EnvoyClient;
  beforeAll(async () => {
    const target = new URL(testRedisUrl());
    proxy = await TcpProxy.start(target.hostname, Number(target.port || 6379));
    const viaProxy = new URL(target.toString());
    viaProxy.port = String(proxy.port);
    h = await startHarness('sqlite', { authz: { redisUrl: viaProxy.toString(), redisFailureMode: 'deny' } });
    envoy = new EnvoyClient(h.app.authzPort);
    h.clock.set(NOW);
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
    await proxy.close();
  });
  const check = async (secret: string) =>
    (await envoy.check({ headers: { 'x-api-key': secret }, method: 'GET', path: '/v1/chat' })).http_response;

  it('answers service_unavailable, keeps the counts, and a repeated update finishes it', async () => {
    const org = await h.root.createOrganization({ name: 'redis-down', rateLimitPerMinute: 0 });
    const { secret } = await h.root.createKey({ organizationId: org.id, name: 'k', scopes: [] });
    for (let i = 0; i < 3; i++) expect(await check(secret)).toBe('ok_response');
    await proxy.down();
    // Without a quota, Checks need no Redis: allowed, and counted here.
    for (let i = 0; i < 2; i++) expect(await check(secret)).toBe('ok_response');
    const e = await failure(h.root.updateOrganization({ id: org.id, monthlyQuota: 8 }));
    expect(e.code).toBe('service_unavailable');
    expect(e.message).toContain('repeat the update');
    expect((await h.root.getOrganization({ id: org.id })).monthlyQuota).toBe(8);
    // The quota's client reconnects in the background: its `ready` event, no polling.
    const client = (h.app.quota as RedisQuotaCounter).redis;
    const ready = client.status === 'ready' ? Promise.resolve() : new Promise((r) => client.once('ready', r));
    await proxy.forward();
    await ready;
    await h.root.updateOrganization({ id: org.id, monthlyQuota: 8 });
    expect((await h.root.getQuota({ organizationId: org.id })).used).toBe(5);
    const outcomes: (string | undefined)[] = [];
    for (let i = 0; i < 4; i++) outcomes.push(await check(secret));
    expect(outcomes).toEqual(['ok_response', 'ok_response', 'ok_response', 'denied_response']);
    const quota = await h.root.getQuota({ organizationId: org.id });
    const stats = await h.root.getUsageStats({ organizationId: org.id, billingPeriod: true });
    expect({ used: quota.used, requests: stats.totals?.requests }).toEqual({ used: 8, requests: 8 });
  });
});
