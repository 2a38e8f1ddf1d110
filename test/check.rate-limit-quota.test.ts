/**
 * Step 8 of the Check through the real server: the per-key rate limit and the monthly
 * quota, their headers and denials, and that denied requests spend nothing.
 */
import { status } from '@grpc/grpc-js';
import { DIALECTS } from './support/databases';
import { failure, startHarness, type Harness } from './support/harness';
import { EnvoyClient, headerMap, type WireCheckResponse } from './support/envoy-client';
import { parseDenyBody } from './support/deny-body';

const body = (r: WireCheckResponse) => parseDenyBody(r.denied_response?.body ?? '{}').error;

describe.each(DIALECTS)('rate limit and quota on %s', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;
  beforeAll(async () => {
    h = await startHarness(dialect);
    envoy = new EnvoyClient(h.app.authzPort);
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
  });

  async function keyIn(
    org: { name: string; rateLimitPerMinute?: number; monthlyQuota?: number; billingAnchorDay?: number },
    key: { rateLimitPerMinute?: number; scopes?: string[] } = {},
  ) {
    const o = await h.root.createOrganization(org);
    const k = await h.root.createKey({
      organizationId: o.id,
      name: 'k',
      scopes: key.scopes ?? ['chat'],
      rateLimitPerMinute: key.rateLimitPerMinute,
    });
    return { org: o, key: k.key!, secret: k.secret };
  }
  const check = (secret: string, ext: Record<string, string> = {}) =>
    envoy.check({ headers: { 'x-api-key': secret }, contextExtensions: ext });

  it('allows up to the limit with rate-limit headers, then answers 429 with retry-after', async () => {
    const { key, secret } = await keyIn({ name: 'rl', rateLimitPerMinute: 3 });
    h.clock.set(Date.UTC(2026, 2, 10, 12, 0, 0));
    // The strict limit (the default): 3 spent in one 5 s sub-window count until that
    // sub-window has fully left the last 60 s, 65 s after its start.
    for (const [remaining, reset] of [
      [2, 0],
      [1, 0],
      [0, 65],
    ] as const) {
      const r = await check(secret);
      expect(r.http_response).toBe('ok_response');
      const hs = headerMap(r.ok_response?.response_headers_to_add);
      expect(hs).toEqual({
        'x-ratelimit-limit': { value: '3', append: false },
        'x-ratelimit-remaining': { value: String(remaining), append: false },
        'x-ratelimit-reset': { value: String(reset), append: false },
        'ratelimit-policy': { value: '"default";q=3;w=60', append: false },
        ratelimit: { value: `"default";r=${remaining};t=${reset}`, append: false },
      });
    }
    const denied = await check(secret);
    expect(denied.status?.code).toBe(8);
    expect(denied.denied_response?.status?.code).toBe(429);
    const hs = headerMap(denied.denied_response?.headers);
    expect(hs['x-keyward-error-code']?.value).toBe('rate_limit_exceeded');
    expect(hs['retry-after']).toEqual({ value: '65', append: false });
    expect(hs['x-ratelimit-remaining']?.value).toBe('0');
    expect(hs['x-ratelimit-reset']?.value).toBe('65');
    expect(hs['www-authenticate']).toBeUndefined();
    expect(body(denied)).toEqual({
      code: 'rate_limit_exceeded',
      message: 'the API key has exceeded its rate limit',
      limit: 3,
      retry_after_seconds: 65,
    });
    // The status RPC agrees, and time frees the window.
    expect(await h.root.getRateLimitStatus({ keyId: key.id })).toMatchObject({
      limit: 3,
      remaining: 0,
      resetSeconds: 65,
      limitSource: 'organization',
    });
    h.clock.advance(64_000);
    expect((await check(secret)).denied_response?.status?.code).toBe(429);
    h.clock.advance(1_000);
    expect((await check(secret)).http_response).toBe('ok_response');
  });

  it("uses the key's own limit over the organization's, and sends no rate-limit headers when unlimited", async () => {
    const own = await keyIn({ name: 'override', rateLimitPerMinute: 100 }, { rateLimitPerMinute: 1 });
    expect((await check(own.secret)).http_response).toBe('ok_response');
    expect((await check(own.secret)).denied_response?.status?.code).toBe(429);
    expect(await h.root.getRateLimitStatus({ keyId: own.key.id })).toMatchObject({ limit: 1, limitSource: 'key' });
    const free = await keyIn({ name: 'unlimited', rateLimitPerMinute: 0 });
    for (let i = 0; i < 5; i++) {
      const r = await check(free.secret);
      expect(r.http_response).toBe('ok_response');
      expect(r.ok_response?.response_headers_to_add ?? []).toEqual([]);
    }
    expect(await h.root.getRateLimitStatus({ keyId: free.key.id })).toMatchObject({ limit: 0, remaining: 0, resetSeconds: 0 });
  });

  it('denied requests spend neither the rate limit nor the quota', async () => {
    const { org, key, secret } = await keyIn({ name: 'no-spend', rateLimitPerMinute: 2, monthlyQuota: 5 });
    for (let i = 0; i < 4; i++) expect((await check(secret, { required_scopes: 'billing' })).denied_response?.status?.code).toBe(403);
    expect(await h.root.getRateLimitStatus({ keyId: key.id })).toMatchObject({ remaining: 2 });
    expect(await h.root.getQuota({ organizationId: org.id })).toMatchObject({ used: 0, remaining: 5 });
    expect((await check(secret)).http_response).toBe('ok_response');
    expect(await h.root.getQuota({ organizationId: org.id })).toMatchObject({ used: 1 });
  });

  it('enforces the monthly quota per billing period and refunds the rate limit of a quota denial', async () => {
    const { org, key, secret } = await keyIn({ name: 'quota', rateLimitPerMinute: 10, monthlyQuota: 2, billingAnchorDay: 15 });
    h.clock.set(Date.UTC(2026, 11, 20, 8, 0, 0)); // Dec 20: period Dec 15 .. Jan 15
    expect((await check(secret)).http_response).toBe('ok_response');
    expect((await check(secret)).http_response).toBe('ok_response');
    const denied = await check(secret);
    expect(denied.status?.code).toBe(8);
    expect(denied.denied_response?.status?.code).toBe(429);
    const periodEnd = Date.UTC(2027, 0, 15);
    const retry = Math.ceil((periodEnd - h.clock.now().getTime()) / 1000);
    expect(headerMap(denied.denied_response?.headers)['retry-after']).toEqual({ value: String(retry), append: false });
    // Its rate-limit headers already count the refund: 2 of 10 spent.
    expect(headerMap(denied.denied_response?.headers)['x-ratelimit-remaining']).toEqual({ value: '8', append: false });
    expect(body(denied)).toEqual({
      code: 'monthly_quota_exceeded',
      message: 'the organization has used its monthly quota',
      limit: 2,
      used: 2,
      period_end: new Date(periodEnd).toISOString(),
      retry_after_seconds: retry,
    });
    // The quota denial gave back its rate-limit request: 2 spent of 10.
    expect(await h.root.getRateLimitStatus({ keyId: key.id })).toMatchObject({ remaining: 8 });
    expect(await h.root.getQuota({ organizationId: org.id })).toEqual({
      organizationId: org.id,
      limit: 2,
      used: 2,
      remaining: 0,
      percentUsed: 100,
      periodStart: new Date(Date.UTC(2026, 11, 15)),
      periodEnd: new Date(periodEnd),
    });
    // The next period, across the year end, starts from zero.
    h.clock.set(periodEnd);
    expect((await check(secret)).http_response).toBe('ok_response');
    expect(await h.root.getQuota({ organizationId: org.id })).toMatchObject({
      used: 1,
      periodStart: new Date(periodEnd),
      periodEnd: new Date(Date.UTC(2027, 1, 15)),
    });
  });

  it('ResetRateLimit clears the window and is audited; limiter stats are for the administrator', async () => {
    const { key, secret } = await keyIn({ name: 'reset', rateLimitPerMinute: 1 });
    expect((await check(secret)).http_response).toBe('ok_response');
    expect((await check(secret)).denied_response?.status?.code).toBe(429);
    expect(await h.root.resetRateLimit({ keyId: key.id })).toMatchObject({ limit: 1, remaining: 1 });
    expect((await check(secret)).http_response).toBe('ok_response');
    const { events } = await h.root.listAuditEvents({ keyId: key.id, action: 'key.rate_limit_reset' });
    expect(events).toHaveLength(1);
    const stats = await h.root.getRateLimiterStats({});
    expect(stats.backend).toBe('memory');
    expect(stats.allowed).toBeGreaterThan(0);
    expect(stats.limited).toBeGreaterThan(0);
    const scoped = await h.root.createKey({ organizationId: key.organizationId, name: 'admin', scopes: ['admin'] });
    const e = await failure(h.client(scoped.secret).getRateLimiterStats({}));
    expect([e.grpc, e.code]).toEqual([status.PERMISSION_DENIED, 'permission_denied']);
  });
});
