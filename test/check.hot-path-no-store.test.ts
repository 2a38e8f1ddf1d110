/**
 * A cached key on the in-memory limiter and quota is decided without the store: no
 * SQL statement at all (counted from the query builder's own `query` events, which
 * every data-plane statement goes through) while many Checks are allowed, rate
 * limited or denied by quota. Usage and last-used times are buffered and written later
 * in batches; the test shows that they are, with a flush. The harness holds the app's
 * timers (flushes, the readiness probe), so every statement counts.
 */
import type { EntityManager } from '@mikro-orm/knex';
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';

describe.each(DIALECTS)('the hot path on %s', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;
  let statements: string[] = [];
  const count = (q: { sql?: string }) => void statements.push(q.sql ?? '(no sql)');
  beforeAll(async () => {
    h = await startHarness(dialect);
    envoy = new EnvoyClient(h.app.authzPort);
    (h.app.orm.em as unknown as EntityManager).getKnex().on('query', count);
  });
  afterAll(async () => {
    (h.app.orm.em as unknown as EntityManager).getKnex().off('query', count);
    envoy.close();
    await h.stop();
  });

  it('makes no store round trip for cached keys, whatever the outcome', async () => {
    const org = await h.root.createOrganization({ name: 'Hot', rateLimitPerMinute: 50, monthlyQuota: 0 });
    const limited = (await h.root.createKey({ organizationId: org.id, name: 'limited' })).secret;
    const revoked = await h.root.createKey({ organizationId: org.id, name: 'revoked' });
    await h.root.revokeKey({ id: revoked.key!.id, reason: 'test' });
    const quotaOrg = await h.root.createOrganization({ name: 'Quota', rateLimitPerMinute: 0, monthlyQuota: 0 });
    const unlimited = (await h.root.createKey({ organizationId: quotaOrg.id, name: 'free' })).secret;
    const check = async (key: string) => {
      const r = await envoy.check({ headers: { 'x-api-key': key }, path: '/v1/items' });
      return r.ok_response ? 'allow' : String(r.denied_response?.status?.code);
    };
    // Warm: one lookup each.
    expect(await check(limited)).toBe('allow');
    expect(await check(revoked.secret)).toBe('401');
    expect(await check(unlimited)).toBe('allow');

    expect(h.timers.names()).toEqual(expect.arrayContaining(['readiness', 'usage-flush', 'last-used-flush', 'quota-sync']));
    statements = [];
    const outcomes: Record<string, number> = {};
    for (let i = 0; i < 100; i++) {
      for (const k of [limited, revoked.secret, unlimited]) {
        const o = await check(k);
        outcomes[o] = (outcomes[o] ?? 0) + 1;
      }
    }
    expect(outcomes).toEqual({ allow: 100 + 49, '401': 100, '429': 51 });
    expect(statements).toEqual([]);
    // Summed in memory, however many Checks: a usage cell for each of the two allowed keys,
    // and a security-event cell each for the revoked key's 401s and the 429s.
    expect(h.app.usage.stats().buffered).toBe(4);

    await h.app.usage.flush();
    expect(h.app.usage.stats()).toMatchObject({ buffered: 0 });
    expect(h.app.usage.stats().flushed).toBeGreaterThanOrEqual(149);
  });
});
