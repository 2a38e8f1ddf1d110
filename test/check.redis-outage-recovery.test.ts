/**
 * A Redis outage under steady Check traffic, against the real Redis behind a TCP proxy
 * the test controls (test/support/tcp-proxy.ts), for both KEYWARD_REDIS_FAILURE_MODEs
 * and two kinds of outage:
 *  - down: every connection is cut and new ones are refused (Redis went away);
 *  - hang: connections are accepted and never answered, and the open ones freeze for
 *    good (a network partition): only command and socket timeouts get keyward out.
 * Before the outage the limits are Redis's (a counter written there decides). During
 * it `local` limits in this process (over the limit 429, under it allowed) and `deny`
 * answers 503 service_unavailable and allows nothing; GetRateLimiterStats shows it.
 * When the proxy forwards again on the same port, keyward goes back to Redis by
 * itself: no fallback decisions any more, the rate-limit and quota counters advance in
 * Redis again, and the quota in Redis holds every request allowed (in `local`, the
 * outage's too). Every Check is answered within the client's gRPC deadline (10 s),
 * the hung case included. Windows move with the harness's ManualClock only.
 */
import Redis from 'ioredis';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient, headerMap, type WireCheckResponse } from './support/envoy-client';
import { describeRedis, testRedisUrl } from './support/redis';
import { TcpProxy } from './support/tcp-proxy';
import { STRICT_TTL_MS, strictKey } from '../src/limits/redis-strict-script';
import { subWindowOf } from '../src/limits/strict-window';
import { billingPeriod, quotaKey } from '../src/limits/quota';

const LIMIT = 3;
const MINUTE = 60_000;
const HIGH = 1_000_000;

type Phase = 'warm-up' | 'redis' | 'outage' | 'recovering' | 'recovered';

function outcome(r: WireCheckResponse): string {
  if (r.http_response === 'ok_response') return 'ok';
  return (JSON.parse(r.denied_response?.body ?? '{}') as { error?: { code?: string } }).error?.code ?? `unexpected ${JSON.stringify(r)}`;
}

function remaining(r: WireCheckResponse): string | undefined {
  const headers = r.http_response === 'ok_response' ? r.ok_response?.response_headers_to_add : r.denied_response?.headers;
  return headerMap(headers)['x-ratelimit-remaining']?.value;
}

/** Polls `cond` every 25 ms until it holds; fails naming `what` after 20 s. */
async function until(what: string, cond: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Checks one after the other with one key, recording in which phases each was sent and answered. */
class Traffic {
  readonly results: { sent: Phase; answered: Phase; outcome: string }[] = [];
  readonly errors: unknown[] = [];
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(envoy: EnvoyClient, secret: string, phase: () => Phase) {
    this.done = (async () => {
      while (!this.stopped) {
        const sent = phase();
        try {
          const r = await envoy.check({ headers: { 'x-api-key': secret } });
          this.results.push({ sent, answered: phase(), outcome: outcome(r) });
        } catch (e) {
          // A gRPC error, DEADLINE_EXCEEDED included: a Check that was not answered.
          this.errors.push(e);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
  }

  within(p: Phase): string[] {
    return this.results.filter((r) => r.sent === p && r.answered === p).map((r) => r.outcome);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

describeRedis('Redis outage and automatic recovery, under Check traffic', () => {
  describe.each(['local', 'deny'] as const)('failure mode %s', (mode) => {
    it.each(['down', 'hang'] as const)('Redis %s, then back on the same address', async (kind) => {
      const target = new URL(testRedisUrl());
      const proxy = await TcpProxy.start(target.hostname, Number(target.port || 6379));
      const viaProxy = new URL(testRedisUrl());
      viaProxy.hostname = '127.0.0.1';
      viaProxy.port = String(proxy.port);
      const redis = new Redis(testRedisUrl(), { maxRetriesPerRequest: 1 });
      let h: Harness | undefined;
      let envoy: EnvoyClient | undefined;
      let traffic: Traffic | undefined;
      // Quota keys live until 2030 + 35 days: deleted at the end.
      const quotaKeys: string[] = [];
      try {
        // Real timers: the recovery happens by itself, the quota sync included.
        h = await startHarness('sqlite', { realTimers: true, authz: { redisUrl: viaProxy.toString(), redisFailureMode: mode } });
        const clock = h.clock;
        // A window start; the quota keys expire at period end + 35 days, in Redis's own
        // time, so the period must lie ahead of the real date.
        clock.set(Date.UTC(2030, 2, 10, 12));
        const root = h.root;
        const e = new EnvoyClient(h.app.authzPort);
        envoy = e;

        const org = await root.createOrganization({ name: 'limited', rateLimitPerMinute: LIMIT, monthlyQuota: HIGH });
        const a = await root.createKey({ organizationId: org.id, name: 'a' });
        const b = await root.createKey({ organizationId: org.id, name: 'b' });
        const probe = await root.createKey({ organizationId: org.id, name: 'probe', rateLimitPerMinute: HIGH });
        const warm = await root.createKey({ organizationId: org.id, name: 'warm', rateLimitPerMinute: 1 });
        const busy = await root.createOrganization({ name: 'busy', rateLimitPerMinute: HIGH, monthlyQuota: HIGH });
        const steady = await root.createKey({ organizationId: busy.id, name: 'steady' });
        for (const o of [org, busy])
          quotaKeys.push(quotaKey(o.id, billingPeriod(o.billingAnchorDay, clock.now().getTime()).start.getTime()));

        // Redis, read directly (not through the proxy).
        const now = () => clock.now().getTime();
        // The strict limit (the default): the count of the current 5 s sub-window.
        const rateCount = async (keyId: string) => Number(await redis.hget(strictKey(keyId), String(subWindowOf(now()))));
        const quotaCount = async () =>
          Number(await redis.get(quotaKey(org.id, billingPeriod(org.billingAnchorDay, now()).start.getTime())));
        const stats = () => root.getRateLimiterStats({});
        // Checks of `org`, counting the allowed ones: the quota Redis must end up with.
        let allowed = 0;
        const check = async (secret: string) => {
          const r = await e.check({ headers: { 'x-api-key': secret } });
          if (outcome(r) === 'ok') allowed++;
          return r;
        };
        const fill = async (secret: string) => {
          const got: [string, string | undefined][] = [];
          for (let i = 0; i <= LIMIT; i++) {
            const r = await check(secret);
            got.push([outcome(r), remaining(r)]);
          }
          return got;
        };
        const limited = [...Array.from({ length: LIMIT }, (_, i) => ['ok', String(LIMIT - 1 - i)]), ['rate_limit_exceeded', '0']];

        let phase: Phase = 'warm-up';
        traffic = new Traffic(e, steady.secret, () => phase);
        const t = traffic;
        // The first Checks of a process run cold code (allowed and 429 alike); a stall
        // then may outlast the 100 ms command timeout. The stats count from here.
        await until('steady traffic is answered', () => t.within('warm-up').length >= 3);
        expect([outcome(await check(warm.secret)), outcome(await check(warm.secret))]).toEqual(['ok', 'rate_limit_exceeded']);
        const s0 = await stats();
        phase = 'redis';
        await until('steady traffic is answered with Redis up', () => t.within('redis').length >= 3);

        // 1. Redis up: the counters are Redis's.
        expect(await fill(a.secret)).toEqual(limited);
        expect(await rateCount(a.key!.id)).toBe(LIMIT);
        // b's window as another replica left it: one request left.
        const sub = String(subWindowOf(now()));
        await redis.hset(strictKey(b.key!.id), 'h', sub, sub, LIMIT - 1);
        await redis.pexpire(strictKey(b.key!.id), STRICT_TTL_MS);
        expect([outcome(await check(b.secret)), outcome(await check(b.secret))]).toEqual(['ok', 'rate_limit_exceeded']);
        expect(await rateCount(b.key!.id)).toBe(LIMIT);
        expect(await quotaCount()).toBe(allowed);
        expect(await stats()).toMatchObject({ backend: 'redis', redisErrors: s0.redisErrors, fallbackDecisions: s0.fallbackDecisions });
        expect(t.within('redis').every((o) => o === 'ok')).toBe(true);

        // 2. The outage, in fresh windows.
        clock.advance(3 * MINUTE);
        const quotaBefore = await quotaCount();
        const sBefore = await stats();
        await (kind === 'down' ? proxy.down() : proxy.hang());
        phase = 'outage';
        await until('steady traffic is answered during the outage', () => t.within('outage').length >= 5);
        if (mode === 'local') {
          // Limited here, per key: over the limit 429, another key under it allowed.
          expect(await fill(a.secret)).toEqual(limited);
          const under = await check(b.secret);
          expect([outcome(under), remaining(under)]).toEqual(['ok', String(LIMIT - 1)]);
          const s = await stats();
          expect(s.redisErrors - sBefore.redisErrors).toBeGreaterThanOrEqual(LIMIT + 2);
          expect(s.fallbackDecisions - sBefore.fallbackDecisions).toBeGreaterThanOrEqual(LIMIT + 2);
          expect(t.within('outage').every((o) => o === 'ok')).toBe(true);
        } else {
          const answers = [...(await fill(a.secret)).map(([o]) => o), outcome(await check(b.secret))];
          expect(answers).toEqual(Array(LIMIT + 2).fill('service_unavailable'));
          const r = await check(probe.secret);
          expect(r.denied_response?.status?.code).toBe(503);
          expect(headerMap(r.denied_response?.headers)['retry-after']?.value).toBe('1');
          const s = await stats();
          expect(s.redisErrors - sBefore.redisErrors).toBeGreaterThanOrEqual(LIMIT + 3);
          // `deny` never decides locally.
          expect(s.fallbackDecisions).toBe(0);
          expect(t.within('outage').every((o) => o === 'service_unavailable')).toBe(true);
        }
        // Nothing reached Redis meanwhile.
        expect(await rateCount(a.key!.id)).toBe(0);
        expect(await quotaCount()).toBe(quotaBefore);

        // 3. Back on the same port: keyward returns to Redis by itself.
        phase = 'recovering';
        const acceptedBefore = proxy.accepted;
        await proxy.forward();
        clock.advance(3 * MINUTE);
        await until('a Check is decided by Redis again', async () => {
          const [before, rate0, quota0] = [await stats(), await rateCount(probe.key!.id), await quotaCount()];
          const r = await check(probe.secret);
          const [after, rate1, quota1] = [await stats(), await rateCount(probe.key!.id), await quotaCount()];
          return outcome(r) === 'ok' && after.fallbackDecisions === before.fallbackDecisions && rate1 > rate0 && quota1 > quota0;
        });
        phase = 'recovered';
        expect(proxy.accepted).toBeGreaterThan(acceptedBefore);
        const sAfter = await stats();
        await until('steady traffic is answered after the recovery', () => t.within('recovered').length >= 5);
        expect(await fill(a.secret)).toEqual(limited);
        expect(await rateCount(a.key!.id)).toBe(LIMIT);
        const probeCount = await rateCount(probe.key!.id);
        expect(outcome(await check(probe.secret))).toBe('ok');
        expect(await rateCount(probe.key!.id)).toBe(probeCount + 1);
        // The quota in Redis: every allowed request once (in `local`, those of the outage too).
        expect(await quotaCount()).toBe(allowed);
        expect((await stats()).fallbackDecisions).toBe(sAfter.fallbackDecisions);
        expect(t.within('recovered').every((o) => o === 'ok')).toBe(true);

        await traffic.stop();
        expect(traffic.errors).toEqual([]);
      } finally {
        await traffic?.stop();
        envoy?.close();
        await proxy.forward();
        await h?.stop();
        await proxy.close();
        if (quotaKeys.length) await redis.del(...quotaKeys);
        redis.disconnect();
      }
    });
  });
});
