/**
 * Usage through KeyAdmin: allowed Checks count requests, RecordUsage adds detail
 * without counting twice, GetUsageStats reports the month, and RecordUsage rejects bad
 * input naming the entry.
 */
import { status } from '@grpc/grpc-js';
import { DIALECTS } from './support/databases';
import { failure, startHarness, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { newId } from '../src/util/ids';
import { UsageRecord } from '../src/gen/keyward/admin/v1/key_admin';

describe.each(DIALECTS)('usage through KeyAdmin on %s', (dialect) => {
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

  it('counts allowed Checks only, adds reported detail, and breaks the month down', async () => {
    h.clock.set(Date.UTC(2026, 4, 10, 9, 0, 0));
    const org = await h.root.createOrganization({ name: 'metered', rateLimitPerMinute: 0 });
    const a = await h.root.createKey({ organizationId: org.id, name: 'a', scopes: ['chat'] });
    const b = await h.root.createKey({ organizationId: org.id, name: 'b', scopes: [] });
    for (let i = 0; i < 3; i++) {
      const r = await envoy.check({
        headers: { 'x-api-key': a.secret, 'x-request-id': `req-${i}` },
        method: 'POST',
        path: `/v1/chat?i=${i}`,
      });
      expect(r.http_response).toBe('ok_response');
    }
    // Denied Checks are not usage.
    expect(
      (await envoy.check({ headers: { 'x-api-key': b.secret }, path: '/v1/chat', contextExtensions: { required_scopes: 'chat' } }))
        .denied_response,
    ).toBeDefined();
    h.clock.set(Date.UTC(2026, 4, 11, 9, 0, 0));
    expect((await envoy.check({ headers: { 'x-api-key': b.secret }, method: 'GET', path: '/v1/models' })).http_response).toBe(
      'ok_response',
    );

    // The service reports detail for two of a's requests: no extra requests are counted.
    const rec = await h.root.recordUsage({
      records: [
        {
          keyId: a.key!.id,
          requestId: 'req-0',
          endpoint: '/v1/chat',
          method: 'POST',
          statusCode: 200,
          durationMs: 120,
          tokens: 1000,
          costUsd: 0.002,
          time: new Date(Date.UTC(2026, 4, 10, 9, 0, 1)),
        },
        {
          keyId: a.key!.id,
          requestId: 'req-1',
          endpoint: '/v1/chat',
          method: 'POST',
          statusCode: 503,
          durationMs: 30,
          tokens: 0,
          costUsd: 0,
          time: new Date(Date.UTC(2026, 4, 10, 9, 0, 2)),
        },
      ],
    });
    expect(rec).toEqual({ accepted: 2 });

    const stats = await h.root.getUsageStats({ organizationId: org.id, month: '2026-05' });
    expect(stats.totals).toMatchObject({ requests: 4, errors4xx: 0, errors5xx: 1, tokens: 1000, costUsd: 0.002, avgDurationMs: 75 });
    expect(stats.totals?.p95DurationMs).toBeGreaterThanOrEqual(120);
    expect(stats.byEndpoint.map((e) => [e.endpoint, e.method, e.totals?.requests])).toEqual([
      ['/v1/chat', 'POST', 3],
      ['/v1/models', 'GET', 1],
    ]);
    expect(Object.fromEntries(stats.byKey.map((k) => [k.keyId, k.totals?.requests]))).toEqual({ [a.key!.id]: 3, [b.key!.id]: 1 });
    expect(stats.byDay.map((d) => [d.day, d.totals?.requests])).toEqual([
      ['2026-05-10', 3],
      ['2026-05-11', 1],
    ]);
    const onlyB = await h.root.getUsageStats({ organizationId: org.id, month: '2026-05', keyId: b.key!.id });
    expect(onlyB.totals?.requests).toBe(1);
    // Default month: the clock's.
    expect((await h.root.getUsageStats({ organizationId: org.id })).month).toBe('2026-05');
    expect((await h.root.getUsageStats({ organizationId: org.id, month: '2026-04' })).totals?.requests ?? 0).toBe(0);
  });

  it('rejects bad RecordUsage input with invalid_argument naming the entry', async () => {
    const org = await h.root.createOrganization({ name: 'bad-usage' });
    const { key } = await h.root.createKey({ organizationId: org.id, name: 'k' });
    const good = UsageRecord.fromPartial({ keyId: key!.id, endpoint: '/v1/x', method: 'POST' });
    const cases: [object[], string][] = [
      [[], 'records'],
      [Array.from({ length: 1001 }, () => good), 'records'],
      [[good, { ...good, tokens: -1 }], 'records[1].tokens'],
      [[{ ...good, costUsd: Number.NaN }], 'records[0].cost_usd'],
      [[{ ...good, durationMs: Number.POSITIVE_INFINITY }], 'records[0].duration_ms'],
      [[{ ...good, costUsd: -0.5 }], 'records[0].cost_usd'],
      [[{ ...good, statusCode: 600 }], 'records[0].status_code'],
      [[{ ...good, endpoint: '' }], 'records[0].endpoint'],
      [[{ ...good, keyId: 'nope' }], 'records[0].key_id'],
      [[good, { ...good, keyId: newId('key', Date.now()) }], 'records[1].key_id'],
    ];
    for (const [records, field] of cases) {
      const e = await failure(h.root.recordUsage({ records: records as never }));
      expect([e.grpc, e.code, e.trailerCode, e.field]).toEqual([status.INVALID_ARGUMENT, 'invalid_argument', 'invalid_argument', field]);
    }
    // An organization-scoped admin cannot report usage for another organization's key.
    const other = await h.root.createOrganization({ name: 'other' });
    const otherKey = await h.root.createKey({ organizationId: other.id, name: 'theirs' });
    const scoped = await h.root.createKey({ organizationId: org.id, name: 'admin', scopes: ['admin'] });
    const e = await failure(h.client(scoped.secret).recordUsage({ records: [{ ...good, keyId: otherKey.key!.id }] }));
    expect([e.grpc, e.field]).toEqual([status.INVALID_ARGUMENT, 'records[0].key_id']);
    await expect(h.client(scoped.secret).recordUsage({ records: [good] })).resolves.toEqual({ accepted: 1 });
    const denied = await failure(h.client(scoped.secret).getUsageStats({ organizationId: other.id }));
    expect(denied.code).toBe('permission_denied');
  });
});
