/**
 * Quotas counted from what was used (issue 13 §2), through the real app, on SQLite and
 * PostgreSQL, with the memory backend and with Redis:
 *  - a quota set, raised, lowered, removed and set again mid-period counts the Checks
 *    already allowed in the period: afterwards Checks are refused exactly when used
 *    reaches the quota;
 *  - an anchor-day change counts the Checks already allowed in the new period;
 *  - at every step, once the usage batches are flushed, GetQuota `used` equals the
 *    GetUsageStats requests of the same billing period;
 *  - two replicas on one database: both replicas' Checks count.
 */
import { DIALECTS, type Dialect } from './support/databases';
import { startHarness, type Harness, type HarnessOverrides } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { describeRedis, testRedisUrl } from './support/redis';
import { parseDenyBody } from './support/deny-body';

const DAY = 24 * 60 * 60 * 1000;
/**
 * Next year's May: Redis keys expire at their period's end plus a grace (real time), so
 * the injected clock stays ahead of the real one.
 */
const YEAR = new Date().getUTCFullYear() + 1;
const MAY = (day: number, hour = 12) => Date.UTC(YEAR, 4, day, hour);

type Backend = 'memory' | 'redis';
const overridesFor = (backend: Backend): HarnessOverrides =>
  backend === 'redis' ? { authz: { redisUrl: testRedisUrl(), redisFailureMode: 'deny' } } : {};

/** One replica's clients and helpers. */
function replica(h: Harness) {
  const envoy = new EnvoyClient(h.app.authzPort);
  const check = async (secret: string, at?: number) => {
    if (at !== undefined) h.clock.set(at);
    const r = await envoy.check({ headers: { 'x-api-key': secret }, method: 'GET', path: '/v1/chat' });
    return r.http_response === 'ok_response' ? 'allowed' : parseDenyBody(r.denied_response?.body ?? '{}').error.code;
  };
  /** `n` Checks at `at` (default: now), each expected `allowed`. */
  const allow = async (secret: string, n: number, at?: number) => {
    for (let i = 0; i < n; i++) expect(await check(secret, at)).toBe('allowed');
  };
  /** Checks until one is refused; returns how many were allowed (at most 100). */
  const allowedUntilRefused = async (secret: string) => {
    for (let n = 0; n < 100; n++) {
      const outcome = await check(secret);
      if (outcome !== 'allowed') {
        expect(outcome).toBe('monthly_quota_exceeded');
        return n;
      }
    }
    throw new Error('never refused');
  };
  /** GetQuota and GetUsageStats of the organization's billing period, after this replica's usage is flushed. */
  const counts = async (orgId: string) => {
    const quota = await h.root.getQuota({ organizationId: orgId });
    await h.app.usage.flush();
    const stats = await h.root.getUsageStats({ organizationId: orgId, billingPeriod: true });
    expect(stats.periodStart).toEqual(quota.periodStart);
    expect(stats.periodEnd).toEqual(quota.periodEnd);
    return { quota, requests: stats.totals?.requests ?? 0 };
  };
  /** What the periodic tasks do: the usage batch and the quota counts reach the database (and Redis). */
  const flush = async () => {
    await h.app.usage.flush();
    await h.app.quota.flush();
  };
  return { envoy, check, allow, allowedUntilRefused, counts, flush };
}

function midPeriodSuite(dialect: Dialect, backend: Backend): void {
  let h: Harness;
  let r: ReturnType<typeof replica>;
  beforeAll(async () => {
    h = await startHarness(dialect, overridesFor(backend));
    r = replica(h);
  });
  afterAll(async () => {
    r.envoy.close();
    await h.stop();
  });

  async function newOrg(fields: { monthlyQuota?: number; billingAnchorDay?: number } = {}) {
    const org = await h.root.createOrganization({ name: 'mid-period', rateLimitPerMinute: 0, ...fields });
    const k = await h.root.createKey({ organizationId: org.id, name: 'k', scopes: [] });
    return { orgId: org.id, secret: k.secret };
  }
  const update = (id: string, fields: { monthlyQuota?: number; billingAnchorDay?: number }) => h.root.updateOrganization({ id, ...fields });

  /** GetQuota's used equals the usage statistics' requests, and both are `used`. */
  async function agree(orgId: string, used: number, limit: number) {
    const { quota, requests } = await r.counts(orgId);
    expect({ used: quota.used, limit: quota.limit, requests }).toEqual({ used, limit, requests: used });
    return quota;
  }

  it('a quota set mid-period after 7 Checks allows exactly 3 more of 10', async () => {
    const { orgId, secret } = await newOrg();
    await r.allow(secret, 3, MAY(2));
    await r.allow(secret, 4, MAY(9));
    await agree(orgId, 7, 0);
    await update(orgId, { monthlyQuota: 10 });
    await agree(orgId, 7, 10);
    expect(await r.allowedUntilRefused(secret)).toBe(3);
    const quota = await agree(orgId, 10, 10);
    expect(quota).toMatchObject({ remaining: 0, percentUsed: 100 });
    expect(quota.periodStart).toEqual(new Date(MAY(1, 0)));
  });

  it('counts what the periodic flushes already stored, without counting it twice', async () => {
    const { orgId, secret } = await newOrg();
    await r.allow(secret, 5, MAY(3));
    await r.flush();
    await r.allow(secret, 2, MAY(4));
    await update(orgId, { monthlyQuota: 10 });
    await agree(orgId, 7, 10);
    await r.flush();
    expect(await r.allowedUntilRefused(secret)).toBe(3);
    await r.flush();
    await agree(orgId, 10, 10);
  });

  it('a raised quota allows the difference, a lowered one refuses at once and keeps the count', async () => {
    const { orgId, secret } = await newOrg({ monthlyQuota: 5 });
    h.clock.set(MAY(10));
    expect(await r.allowedUntilRefused(secret)).toBe(5);
    await update(orgId, { monthlyQuota: 8 });
    await agree(orgId, 5, 8);
    expect(await r.allowedUntilRefused(secret)).toBe(3);
    await update(orgId, { monthlyQuota: 4 });
    const lowered = await agree(orgId, 8, 4);
    expect(lowered).toMatchObject({ remaining: 0, percentUsed: 200 });
    expect(await r.allowedUntilRefused(secret)).toBe(0);
    await update(orgId, { monthlyQuota: 12 });
    expect(await r.allowedUntilRefused(secret)).toBe(4);
    await agree(orgId, 12, 12);
  });

  it('a quota removed and set again counts the Checks allowed while there was none', async () => {
    const { orgId, secret } = await newOrg({ monthlyQuota: 5 });
    await r.allow(secret, 3, MAY(11));
    await update(orgId, { monthlyQuota: 0 });
    await r.allow(secret, 4, MAY(12));
    await agree(orgId, 7, 0);
    await r.flush();
    await update(orgId, { monthlyQuota: 10 });
    expect(await r.allowedUntilRefused(secret)).toBe(3);
    await agree(orgId, 10, 10);
  });

  it('an anchor-day change counts the Checks already allowed in the new period', async () => {
    const { orgId, secret } = await newOrg({ monthlyQuota: 100 });
    // Anchor 1: the period is May 1 .. June 1.
    await r.allow(secret, 3, MAY(5));
    await r.allow(secret, 2, MAY(16));
    await r.allow(secret, 2, MAY(20));
    await agree(orgId, 7, 100);
    // Anchor 15 on May 20: the period is May 15 .. June 15, which holds 4 of them.
    await update(orgId, { billingAnchorDay: 15, monthlyQuota: 6 });
    const moved = await agree(orgId, 4, 6);
    expect(moved.periodStart).toEqual(new Date(MAY(15, 0)));
    expect(await r.allowedUntilRefused(secret)).toBe(2);
    await agree(orgId, 6, 6);
    // Back to anchor 1: May 1 .. June 1 holds all 9, over a quota of 6.
    await update(orgId, { billingAnchorDay: 1 });
    await agree(orgId, 9, 6);
    expect(await r.allowedUntilRefused(secret)).toBe(0);
    // In the next period (anchor 15 again, June 16): nothing used yet.
    h.clock.set(MAY(20) + 27 * DAY);
    await update(orgId, { billingAnchorDay: 15 });
    await agree(orgId, 0, 6);
    expect(await r.allowedUntilRefused(secret)).toBe(6);
    await agree(orgId, 6, 6);
  });
}

function twoReplicasSuite(backend: Backend): void {
  let a: Harness;
  let b: Harness;
  let ra: ReturnType<typeof replica>;
  let rb: ReturnType<typeof replica>;
  beforeAll(async () => {
    a = await startHarness('postgres', overridesFor(backend));
    b = await startHarness('postgres', { ...overridesFor(backend), reuseDatabase: a.db, hashSecret: a.config.hashSecret });
    ra = replica(a);
    rb = replica(b);
  });
  afterAll(async () => {
    ra.envoy.close();
    rb.envoy.close();
    await b.stop();
    await a.stop();
  });

  it('a quota set on one replica counts the Checks both replicas allowed', async () => {
    const org = await a.root.createOrganization({ name: 'two-replicas', rateLimitPerMinute: 0 });
    const { secret } = await a.root.createKey({ organizationId: org.id, name: 'k', scopes: [] });
    await ra.allow(secret, 4, MAY(6));
    await rb.allow(secret, 3, MAY(6));
    // Replica B's periodic flushes have run; A's buffers are flushed by the update itself.
    await rb.flush();
    await a.root.updateOrganization({ id: org.id, monthlyQuota: 10 });
    expect(await ra.allowedUntilRefused(secret)).toBe(3);
    await ra.flush();
    const { quota, requests } = await ra.counts(org.id);
    expect({ used: quota.used, requests }).toEqual({ used: 10, requests: 10 });
  });
}

describe.each(DIALECTS)('quota changes mid-period on %s, memory backend', (dialect) => midPeriodSuite(dialect, 'memory'));
describe('two replicas on PostgreSQL, memory backend', () => twoReplicasSuite('memory'));

describeRedis('with Redis', () => {
  describe.each(DIALECTS)('quota changes mid-period on %s, Redis backend', (dialect) => midPeriodSuite(dialect, 'redis'));
  describe('two replicas on PostgreSQL, Redis backend', () => twoReplicasSuite('redis'));
});
