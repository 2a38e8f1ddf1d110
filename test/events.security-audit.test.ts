/**
 * Security events from the request path, end to end on a real server (SQLite and
 * PostgreSQL): refused revoked, expired, disabled and inactive-organization keys, 429s, quota
 * refusals and quota thresholds become audit rows, one per kind and key (or
 * organization) per window, with the number of occurrences, the first and last time
 * and the last client address; nothing is written per request (only a flush writes
 * them); unknown keys make no row; `key.expiring` is written once per key.
 */
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { DIALECTS } from './support/databases';
import type { AuditEvent } from '../src/gen/keyward/admin/v1/key_admin';

describe.each(DIALECTS)('security events (%s)', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;
  beforeAll(async () => {
    h = await startHarness(dialect);
    envoy = new EnvoyClient(h.app.authzPort);
  });
  afterAll(async () => {
    envoy?.close();
    await h?.stop();
  });

  const check = (secret: string, headers: Record<string, string> = {}) =>
    envoy.check({ method: 'GET', path: '/v1/x', headers: { 'x-api-key': secret, ...headers } });
  const events = async (organizationId: string, action: string): Promise<AuditEvent[]> =>
    (await h.root.listAuditEvents({ organizationId, action, pageSize: 100 })).events;
  async function newOrg(over: Record<string, unknown> = {}) {
    return h.root.createOrganization({ name: 'sec', rateLimitPerMinute: 0, ...over });
  }

  it('a revoked key used: one row per window with occurrences, first and last seen and the last client; written only by a flush', async () => {
    const org = await newOrg();
    const k = await h.root.createKey({ organizationId: org.id, name: 'k' });
    await h.root.revokeKey({ id: k.key!.id, reason: 'leaked' });
    const t0 = h.clock.now().getTime();
    for (let i = 0; i < 5; i++)
      expect((await check(k.secret, { 'x-forwarded-for': '203.0.113.7, 10.1.1.1' })).denied_response).toBeDefined();
    // Counted in memory: no row before the flush.
    expect(await events(org.id, 'key.revoked_used')).toEqual([]);
    await h.app.usage.flush();
    let [row, ...rest] = await events(org.id, 'key.revoked_used');
    expect(rest).toEqual([]);
    expect(row).toMatchObject({
      actor: 'keyward',
      keyId: k.key!.id,
      outcome: 'denied',
      reason: 'revoked_api_key',
      occurrences: 5,
      clientAddress: '203.0.113.7',
    });
    expect(row!.firstSeen!.getTime()).toBe(t0);

    // Later in the same window, from the source address: the same row.
    h.clock.advance(10_000);
    await check(k.secret);
    await check(k.secret);
    await h.app.usage.flush();
    [row, ...rest] = await events(org.id, 'key.revoked_used');
    expect(rest).toEqual([]);
    expect(row).toMatchObject({ occurrences: 7, clientAddress: '10.0.0.1' });
    expect(row!.firstSeen!.getTime()).toBe(t0);
    expect(row!.lastSeen!.getTime()).toBe(t0 + 10_000);

    // The next window: a new row.
    h.clock.advance(300_000);
    await check(k.secret);
    await h.app.usage.flush();
    expect((await events(org.id, 'key.revoked_used')).map((e) => e.occurrences)).toEqual([1, 7]);
  });

  it('expired keys, inactive organizations, 429s and quota refusals are events; unknown keys are not', async () => {
    const org = await newOrg({ monthlyQuota: 4, quotaAlertPercents: [50, 100] });
    const limited = await h.root.createKey({ organizationId: org.id, name: 'limited', rateLimitPerMinute: 2 });
    for (let i = 0; i < 4; i++) await check(limited.secret); // 2 allowed, 2 refused with 429
    const other = await h.root.createKey({ organizationId: org.id, name: 'other' });
    for (let i = 0; i < 3; i++) await check(other.secret); // 2 allowed (quota 4 reached), 1 refused
    const expiring = await h.root.createKey({
      organizationId: org.id,
      name: 'expiring',
      expiresAt: new Date(h.clock.now().getTime() + 60_000),
    });
    h.clock.advance(120_000);
    await check(expiring.secret);
    for (let i = 0; i < 20; i++) await check(`kw_live_${'A'.repeat(30)}${i}`);
    await h.app.usage.flush();

    expect(await events(org.id, 'key.rate_limited')).toMatchObject([
      { keyId: limited.key!.id, occurrences: 2, reason: 'rate_limit_exceeded' },
    ]);
    expect(await events(org.id, 'org.quota_exceeded')).toMatchObject([{ occurrences: 1, reason: 'monthly_quota_exceeded' }]);
    expect((await events(org.id, 'org.quota_threshold')).map((e) => [e.reason, e.outcome, e.occurrences])).toEqual([
      ['100%', 'observed', 1],
      ['50%', 'observed', 1],
    ]);
    expect(await events(org.id, 'key.expired_used')).toMatchObject([{ keyId: expiring.key!.id, occurrences: 1 }]);

    const disabled = await h.root.createKey({ organizationId: org.id, name: 'disabled' });
    await h.root.updateKey({ id: disabled.key!.id, enabled: false });
    await check(disabled.secret);
    await h.app.usage.flush();
    expect(await events(org.id, 'key.disabled_used')).toMatchObject([{ keyId: disabled.key!.id, reason: 'disabled_api_key' }]);

    await h.root.updateOrganization({ id: org.id, active: false });
    await check(other.secret);
    await h.app.usage.flush();
    expect(await events(org.id, 'key.inactive_org_used')).toMatchObject([{ keyId: other.key!.id, reason: 'organization_inactive' }]);
    // Unknown keys: metrics only, nothing stored for them.
    const all = (await h.root.listAuditEvents({ action: '', pageSize: 500 })).events;
    expect(all.filter((e) => e.actor === 'keyward' && e.organizationId === '')).toEqual([]);
  });

  it('key.expiring: once per key whose expiry is within 7 days', async () => {
    const org = await newOrg();
    const soon = await h.root.createKey({ organizationId: org.id, name: 'soon', expiresInDays: 3 });
    await h.root.createKey({ organizationId: org.id, name: 'later', expiresInDays: 30 });
    expect(h.timers.run('key-expiry-scan')).toBe(1);
    await waitFor(async () => (await events(org.id, 'key.expiring')).length > 0);
    h.timers.run('key-expiry-scan');
    h.clock.advance(3_600_000);
    h.timers.run('key-expiry-scan');
    await h.app.usage.flush();
    const rows = await events(org.id, 'key.expiring');
    expect(rows).toMatchObject([{ keyId: soon.key!.id, outcome: 'observed', occurrences: 1 }]);
  });
});

/** The expiry scan runs in the background: wait for its row (bounded). */
async function waitFor(cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error('timed out');
}
