/**
 * Usage storage bounds on a real server, on SQLite and PostgreSQL:
 *  - an organization counts at most KEYWARD_USAGE_MAX_ENDPOINTS distinct endpoints a
 *    month; beyond, usage lands in `(other)` (daily and monthly alike) and
 *    keyward_usage_endpoint_overflow_total counts it; another organization and the next
 *    month start afresh; a second store on the same database (another replica) honours
 *    what the first admitted;
 *  - allowed Checks never write a row of usage_events; with KEYWARD_USAGE_RAW_EVENTS
 *    off (the default) nothing does, and on, only detail records (RecordUsage).
 */
import type { EntityManager, Knex } from '@mikro-orm/knex';
import { createUsageStore } from '../src/usage/store';
import { UsageRecord } from '../src/gen/keyward/admin/v1/key_admin';
import { createUsageTables } from '../src/store/usage-tables';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { DIALECTS } from './support/databases';

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ').pop()) : NaN;
}

describe.each(DIALECTS)('usage storage bounds (%s)', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;
  let knex: Knex;
  beforeAll(async () => {
    h = await startHarness(dialect, { httpListen: '127.0.0.1:0', authz: { usageMaxEndpoints: 3 } });
    envoy = new EnvoyClient(h.app.authzPort);
    knex = (h.app.orm.em as unknown as EntityManager).getKnex();
  });
  afterAll(async () => {
    envoy?.close();
    await h?.stop();
  });

  async function newKey(name: string): Promise<{ orgId: string; keyId: string; secret: string }> {
    const org = await h.root.createOrganization({ name, rateLimitPerMinute: 0 });
    const k = await h.root.createKey({ organizationId: org.id, name: 'k' });
    return { orgId: org.id, keyId: k.key!.id, secret: k.secret };
  }
  const check = async (secret: string, path: string) =>
    expect((await envoy.check({ method: 'GET', path, headers: { 'x-api-key': secret } })).status?.code ?? 0).toBe(0);
  const endpoints = async (orgId: string, month = h.clock.now().toISOString().slice(0, 7)) => {
    const stats = await h.root.getUsageStats({ organizationId: orgId, month });
    return Object.fromEntries(stats.byEndpoint.map((e) => [e.endpoint, e.totals?.requests]));
  };

  it('counts at most KEYWARD_USAGE_MAX_ENDPOINTS endpoints a month; the rest lands in (other), counted by a metric', async () => {
    const a = await newKey('capped');
    const before = await metric(h.app.httpPort!, 'keyward_usage_endpoint_overflow_total');
    for (const path of ['/a', '/b', '/a', '/c']) await check(a.secret, path);
    await h.app.usage.flush();
    // Two more flushes' worth: a new endpoint beyond the cap, and a known one.
    for (const path of ['/d', '/e', '/e', '/b']) await check(a.secret, path);
    await h.app.usage.flush();
    expect(await endpoints(a.orgId)).toEqual({ '/a': 2, '/b': 2, '/c': 1, '(other)': 3 });
    expect((await metric(h.app.httpPort!, 'keyward_usage_endpoint_overflow_total')) - before).toBe(3);
    // The daily rows agree with the monthly ones.
    const days: { endpoint: string }[] = await knex('usage_daily').where('organization_id', a.orgId).distinct('endpoint');
    expect(days.map((d) => d.endpoint).sort()).toEqual(['(other)', '/a', '/b', '/c']);

    // Another organization has a cap of its own.
    const b = await newKey('other org');
    for (const path of ['/x', '/y', '/z']) await check(b.secret, path);
    await h.app.usage.flush();
    expect(await endpoints(b.orgId)).toEqual({ '/x': 1, '/y': 1, '/z': 1 });

    // A second store on the same database (another replica) honours what is stored.
    const replica = createUsageStore(createUsageTables(h.app.orm, dialect), { maxEndpoints: 3 });
    const at = h.clock.now().getTime();
    const event = { at, organizationId: a.orgId, keyId: a.keyId, method: 'GET', requests: 1 as const, source: 'check' as const };
    await replica.writeEvents([
      { ...event, endpoint: '/f' },
      { ...event, endpoint: '/a' },
    ]);
    expect(replica.endpointOverflow).toBe(1);
    expect(await endpoints(a.orgId)).toEqual({ '/a': 3, '/b': 2, '/c': 1, '(other)': 4 });

    // The next month starts afresh.
    h.clock.set(new Date(Date.UTC(h.clock.now().getUTCFullYear(), h.clock.now().getUTCMonth() + 1, 2)));
    for (const path of ['/d', '/e', '/f', '/g']) await check(a.secret, path);
    await h.app.usage.flush();
    expect(await endpoints(a.orgId)).toEqual({ '/d': 1, '/e': 1, '/f': 1, '(other)': 1 });
  });

  it('writes no raw row for Checks, nor for detail records unless KEYWARD_USAGE_RAW_EVENTS is on', async () => {
    const a = await newKey('no raw');
    for (let i = 0; i < 20; i++) await check(a.secret, '/v1/chat');
    await h.root.recordUsage({
      records: [UsageRecord.fromPartial({ keyId: a.keyId, endpoint: '/v1/chat', method: 'GET', statusCode: 500, durationMs: 12 })],
    });
    await h.app.usage.flush();
    expect(Number((await knex('usage_events').where('organization_id', a.orgId).count({ n: '*' }))[0]!.n)).toBe(0);
    const stats = await h.root.getUsageStats({ organizationId: a.orgId, month: h.clock.now().toISOString().slice(0, 7) });
    expect(stats.totals).toMatchObject({ requests: 20, errors5xx: 1 });
    // p95 comes from the aggregates' histogram.
    expect(stats.totals?.p95DurationMs).toBe(20);
  });
});

describe('KEYWARD_USAGE_RAW_EVENTS on (sqlite)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('sqlite', { authz: { usageRawEvents: true } });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('stores a raw row for each detail record, and still none for Checks', async () => {
    const org = await h.root.createOrganization({ name: 'raw', rateLimitPerMinute: 0 });
    const k = await h.root.createKey({ organizationId: org.id, name: 'k' });
    const envoy = new EnvoyClient(h.app.authzPort);
    for (let i = 0; i < 5; i++) await envoy.check({ method: 'GET', path: '/v1/chat', headers: { 'x-api-key': k.secret } });
    envoy.close();
    await h.root.recordUsage({
      records: [
        UsageRecord.fromPartial({ keyId: k.key!.id, requestId: 'r-1', endpoint: '/v1/chat', method: 'GET', statusCode: 200, tokens: 10 }),
        UsageRecord.fromPartial({ keyId: k.key!.id, requestId: 'r-2', endpoint: '/v1/chat', method: 'GET', statusCode: 429 }),
      ],
    });
    await h.app.usage.flush();
    const knex = (h.app.orm.em as unknown as EntityManager).getKnex();
    const rows: { request_id: string; requests: number; source: string }[] = await knex('usage_events')
      .where('organization_id', org.id)
      .orderBy('id')
      .select('request_id', 'requests', 'source');
    expect(rows.map((r) => [r.request_id, Number(r.requests), r.source])).toEqual([
      ['r-1', 0, 'api'],
      ['r-2', 0, 'api'],
    ]);
  });
});
