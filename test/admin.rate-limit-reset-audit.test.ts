/**
 * ResetRateLimit is audited after the reset: `success` only once the window was
 * cleared in Redis; when Redis is down the call answers service_unavailable and the
 * audit row is `denied` with reason service_unavailable (no success row). Redis is cut
 * through a TCP proxy the test controls.
 */
import { status } from '@grpc/grpc-js';
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { expectError } from './support/admin-errors';
import { EnvoyClient } from './support/envoy-client';
import { describeRedis, testRedisUrl } from './support/redis';
import { TcpProxy } from './support/tcp-proxy';
import type { RedisRateLimiter } from '../src/limits/redis-limiter';

for (const dialect of DIALECTS) {
  describeRedis(`ResetRateLimit's audit row on ${dialect}`, () => {
    let proxy: TcpProxy;
    let h: Harness;
    let envoy: EnvoyClient;
    beforeAll(async () => {
      const target = new URL(testRedisUrl());
      proxy = await TcpProxy.start(target.hostname, Number(target.port || 6379));
      const viaProxy = new URL(target.toString());
      viaProxy.port = String(proxy.port);
      h = await startHarness(dialect, { authz: { redisUrl: viaProxy.toString(), redisFailureMode: 'deny' } });
      envoy = new EnvoyClient(h.app.authzPort);
    });
    afterAll(async () => {
      envoy.close();
      await h.stop();
      await proxy.close();
    });

    const resetRows = async (keyId: string) =>
      (await h.root.listAuditEvents({ keyId, action: 'key.rate_limit_reset', pageSize: 100 })).events
        .reverse()
        .map((e) => [e.outcome, e.reason, e.actor]);

    it('success after a reset that worked; denied with the error code, and the error, when Redis is down', async () => {
      const org = await h.root.createOrganization({ name: 'r', rateLimitPerMinute: 2 });
      const { key, secret } = await h.root.createKey({ organizationId: org.id, name: 'k' });
      const check = async () => (await envoy.check({ headers: { 'x-api-key': secret } })).http_response;
      expect([await check(), await check(), await check()]).toEqual(['ok_response', 'ok_response', 'denied_response']);

      expect(await h.root.resetRateLimit({ keyId: key!.id })).toMatchObject({ limit: 2, remaining: 2 });
      expect(await resetRows(key!.id)).toEqual([['success', '', 'admin']]);
      expect(await check()).toBe('ok_response');

      await proxy.down();
      await expectError(h.root.resetRateLimit({ keyId: key!.id }), status.UNAVAILABLE, 'service_unavailable');
      expect(await resetRows(key!.id)).toEqual([
        ['success', '', 'admin'],
        ['denied', 'service_unavailable', 'admin'],
      ]);

      // Back: a reset succeeds and is audited as such.
      const client = (h.app.limiter as RedisRateLimiter).client;
      const ready = client.status === 'ready' ? Promise.resolve() : new Promise((r) => client.once('ready', r));
      await proxy.forward();
      await ready;
      await h.root.resetRateLimit({ keyId: key!.id });
      expect((await resetRows(key!.id)).at(-1)).toEqual(['success', '', 'admin']);
    });
  });
}
