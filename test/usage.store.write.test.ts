/**
 * The usage store on real SQLite and PostgreSQL: raw events, daily/monthly aggregates
 * upserted across batches, GetUsageStats' numbers, UTC month boundaries, the key
 * filter and the retention purge.
 */
import type { EntityManager, Knex } from '@mikro-orm/knex';
import { openOrm, migrate, type Orm } from '../src/store/orm';
import { createUsageStore, dayOf, monthOf, retentionCutoff, type UsageStore } from '../src/usage/store';
import { createUsageTables } from '../src/store/usage-tables';
import type { UsageEvent } from '../src/usage/types';
import { InvalidArgumentError } from '../src/errors/domain';
import { newId } from '../src/util/ids';
import { createTestDatabase, DIALECTS, type TestDatabase } from './support/databases';

const T0 = Date.UTC(2026, 2, 10, 9, 30, 0); // 2026-03-10
const DAY = 86_400_000;
const zeros = () => new Array<number>(16).fill(0);
/** A histogram with `counts[i]` in bucket i. */
const hist = (counts: Record<number, number>) => {
  const h = zeros();
  for (const [i, c] of Object.entries(counts)) h[Number(i)] = c;
  return h;
};

/** A stored time: epoch ms on SQLite; timestamptz text (or a Date) on PostgreSQL. */
function epochMs(v: unknown): number {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'number') return v;
  return Date.parse(String(v));
}

interface AggRow {
  organization_id: string;
  key_id: string;
  period: string;
  endpoint: string;
  method: string;
  requests: number;
  errors4xx: number;
  errors5xx: number;
  tokens: number;
  cost_usd: number;
  duration_count: number;
  duration_sum_ms: number;
  duration_buckets: number[];
}

describe.each(DIALECTS)('usage store on %s', (dialect) => {
  let db: TestDatabase;
  let orm: Orm;
  let usage: UsageStore;
  let knex: Knex;
  let n = 0;
  const orgId = () => newId('org', T0 + ++n);
  const keyId = () => newId('key', T0 + ++n);

  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    orm = await openOrm(db.config);
    await migrate(orm);
    usage = createUsageStore(createUsageTables(orm, dialect));
    knex = (orm.em as unknown as EntityManager).getKnex();
  });
  afterAll(async () => {
    await orm.close(true);
    await db.dispose();
  });

  const ev = (org: string, key: string, over: Partial<UsageEvent> = {}): UsageEvent => ({
    at: T0,
    organizationId: org,
    keyId: key,
    endpoint: '/v1/chat/completions',
    method: 'POST',
    requests: 0,
    source: 'accesslog',
    ...over,
  });
  const check = (org: string, key: string, over: Partial<UsageEvent> = {}) => ev(org, key, { requests: 1, source: 'check', ...over });

  const aggRows = async (table: 'usage_daily' | 'usage_monthly', org: string): Promise<AggRow[]> => {
    const rows = await knex(table).where('organization_id', org).orderBy(['key_id', 'period', 'endpoint', 'method']).select('*');
    return rows.map((r: Record<string, unknown>) => ({
      organization_id: String(r.organization_id),
      key_id: String(r.key_id),
      period: String(r.period),
      endpoint: String(r.endpoint),
      method: String(r.method),
      requests: Number(r.requests),
      errors4xx: Number(r.errors4xx),
      errors5xx: Number(r.errors5xx),
      tokens: Number(r.tokens),
      cost_usd: Number(r.cost_usd),
      duration_count: Number(r.duration_count),
      duration_sum_ms: Number(r.duration_sum_ms),
      duration_buckets: (typeof r.duration_buckets === 'string' ? JSON.parse(r.duration_buckets) : r.duration_buckets) as number[],
    }));
  };
  const rawEvents = async (org: string) => {
    const rows = await knex('usage_events').where('organization_id', org).orderBy('id').select('*');
    return rows.map((r: Record<string, unknown>) => ({
      at: epochMs(r.at),
      key_id: r.key_id,
      request_id: r.request_id,
      endpoint: r.endpoint,
      method: r.method,
      requests: Number(r.requests),
      status_code: r.status_code === null ? null : Number(r.status_code),
      duration_ms: r.duration_ms === null ? null : Number(r.duration_ms),
      tokens: r.tokens === null ? null : Number(r.tokens),
      cost_usd: r.cost_usd === null ? null : Number(r.cost_usd),
      source: r.source,
    }));
  };

  it('writes raw events as given, with nulls for what an event did not report', async () => {
    const org = orgId();
    const key = keyId();
    await usage.write([
      check(org, key, { at: T0 + 1, requestId: 'req-1', method: 'GET', endpoint: '/v1/models' }),
      ev(org, key, {
        at: T0 + 2,
        requestId: 'req-1',
        method: 'GET',
        endpoint: '/v1/models',
        statusCode: 200,
        durationMs: 12.5,
        tokens: 42,
        costUsd: 0.0125,
      }),
      ev(org, key, { at: T0 + 3, source: 'api', statusCode: 404 }),
    ]);
    expect(await rawEvents(org)).toEqual([
      {
        at: T0 + 1,
        key_id: key,
        request_id: 'req-1',
        endpoint: '/v1/models',
        method: 'GET',
        requests: 1,
        status_code: null,
        duration_ms: null,
        tokens: null,
        cost_usd: null,
        source: 'check',
      },
      {
        at: T0 + 2,
        key_id: key,
        request_id: 'req-1',
        endpoint: '/v1/models',
        method: 'GET',
        requests: 0,
        status_code: 200,
        duration_ms: 12.5,
        tokens: 42,
        cost_usd: 0.0125,
        source: 'accesslog',
      },
      {
        at: T0 + 3,
        key_id: key,
        request_id: null,
        endpoint: '/v1/chat/completions',
        method: 'POST',
        requests: 0,
        status_code: 404,
        duration_ms: null,
        tokens: null,
        cost_usd: null,
        source: 'api',
      },
    ]);
  });

  it('upserts daily and monthly aggregates across several batches: requests from Checks only, errors by class, tokens, cost, durations and merged buckets', async () => {
    const org = orgId();
    const key = keyId();
    const d1 = T0;
    const d2 = T0 + DAY;
    // Batch 1: three allowed Checks and two access-log entries on day 1.
    await usage.write([
      check(org, key),
      check(org, key),
      check(org, key),
      ev(org, key, { statusCode: 200, durationMs: 12, tokens: 100, costUsd: 0.01 }),
      ev(org, key, { statusCode: 200, durationMs: 3 }),
    ]);
    // Batch 2: errors of both classes and a slow request, same day; an entry without duration.
    await usage.write([
      ev(org, key, { statusCode: 404, durationMs: 4 }),
      ev(org, key, { statusCode: 429 }),
      ev(org, key, { statusCode: 503, durationMs: 1500, tokens: 50, costUsd: 0.02 }),
      ev(org, key, { statusCode: 302, source: 'api', tokens: 7 }),
    ]);
    // Batch 3: day 2 of the same month, and a batch holding only Checks.
    await usage.write([check(org, key, { at: d2 }), check(org, key, { at: d2 })]);
    // Batch 4: more durations on day 1 (a row that already has a histogram).
    await usage.write([ev(org, key, { at: d1 + 1000, statusCode: 500, durationMs: 12 }), ev(org, key, { at: d1, durationMs: 70000 })]);

    const day1 = {
      organization_id: org,
      key_id: key,
      period: dayOf(d1),
      endpoint: '/v1/chat/completions',
      method: 'POST',
      requests: 3,
      errors4xx: 2,
      errors5xx: 2,
      tokens: 157,
      duration_count: 6,
      duration_sum_ms: 12 + 3 + 4 + 1500 + 12 + 70000,
      // 3 ms and 4 ms → (2,5]; 12 ms twice → (10,20]; 1500 → (1000,2000]; 70 s → overflow.
      duration_buckets: hist({ 2: 2, 4: 2, 10: 1, 15: 1 }),
    };
    const daily = await aggRows('usage_daily', org);
    expect(daily).toHaveLength(2);
    expect(daily[0]).toMatchObject(day1);
    expect(daily[0]!.cost_usd).toBeCloseTo(0.03, 10);
    expect(daily[1]).toEqual({
      ...day1,
      period: dayOf(d2),
      requests: 2,
      errors4xx: 0,
      errors5xx: 0,
      tokens: 0,
      cost_usd: 0,
      duration_count: 0,
      duration_sum_ms: 0,
      duration_buckets: zeros(),
    });
    const monthly = await aggRows('usage_monthly', org);
    expect(monthly).toHaveLength(1);
    expect(monthly[0]).toMatchObject({ ...day1, period: '2026-03', requests: 5 });
    expect(monthly[0]!.cost_usd).toBeCloseTo(0.03, 10);
    expect(await rawEvents(org)).toHaveLength(13);
  });

  it('pre-aggregates a batch: one row per key, period, endpoint and method, whatever the batch size', async () => {
    const org = orgId();
    const [k1, k2] = [keyId(), keyId()];
    const batch: UsageEvent[] = [];
    // 1200 events over 2 keys × 300 endpoints: more than one insert chunk of each kind.
    for (let i = 0; i < 1200; i++) {
      const key = Math.floor(i / 300) % 2 === 0 ? k1 : k2;
      batch.push(
        i % 3 === 0
          ? check(org, key, { endpoint: `/e/${i % 300}` })
          : ev(org, key, { endpoint: `/e/${i % 300}`, durationMs: i % 7, tokens: 1 }),
      );
    }
    await usage.write(batch);
    await usage.write(batch);
    const monthly = await aggRows('usage_monthly', org);
    expect(monthly).toHaveLength(600);
    const sum = (f: (r: AggRow) => number) => monthly.reduce((s, r) => s + f(r), 0);
    expect(sum((r) => r.requests)).toBe(800);
    expect(sum((r) => r.tokens)).toBe(1600);
    expect(sum((r) => r.duration_count)).toBe(1600);
    expect(sum((r) => r.duration_buckets.reduce((a, b) => a + b, 0))).toBe(1600);
    expect(await aggRows('usage_daily', org)).toHaveLength(600);
    expect(await rawEvents(org)).toHaveLength(2400);
  });

  it('concurrent writes to the same rows add up', async () => {
    const org = orgId();
    const key = keyId();
    const batch = [check(org, key), ev(org, key, { statusCode: 500, durationMs: 30, tokens: 3 })];
    await Promise.all(Array.from({ length: 8 }, () => usage.write(batch)));
    const [m] = await aggRows('usage_monthly', org);
    expect(m).toMatchObject({ requests: 8, errors5xx: 8, tokens: 24, duration_count: 8, duration_buckets: hist({ 5: 8 }) });
  });

  it('skips events that cannot be stored instead of failing the batch; cuts over-long strings', async () => {
    const org = orgId();
    const key = keyId();
    const skipped = usage.skippedEvents;
    await usage.write([
      ev(org, key, { at: Number.NaN }),
      ev(org, '', {}),
      check(org, key, { endpoint: '/x'.repeat(400) + '\u0000', method: 'VERYLONGMETHODNAME', requestId: 'r'.repeat(300) }),
    ]);
    expect(usage.skippedEvents).toBe(skipped + 2);
    const [r] = await rawEvents(org);
    expect(String(r!.endpoint)).toHaveLength(512);
    expect(String(r!.method)).toHaveLength(16);
    expect(String(r!.request_id)).toHaveLength(128);
    expect((await aggRows('usage_monthly', org))[0]!.requests).toBe(1);
  });

  describe('stats()', () => {
    const org = newId('org', T0 - 5);
    const kA = newId('key', T0 - 4);
    const kB = newId('key', T0 - 3);
    const kC = newId('key', T0 - 2);
    beforeAll(async () => {
      const mar1 = Date.UTC(2026, 2, 1, 0, 0, 0, 0);
      const mar31End = Date.UTC(2026, 2, 31, 23, 59, 59, 999);
      await usage.write([
        // Key A: 3 requests to /chat, 1 to /models; durations 10, 10, 1500, 40.
        check(org, kA, { at: mar1 }),
        check(org, kA, { at: mar1 + 5 }),
        check(org, kA, { at: mar1 + DAY }),
        check(org, kA, { at: mar1 + DAY, endpoint: '/v1/models', method: 'GET' }),
        ev(org, kA, { at: mar1, statusCode: 200, durationMs: 10, tokens: 100, costUsd: 0.1 }),
        ev(org, kA, { at: mar1 + 5, statusCode: 429, durationMs: 10 }),
        ev(org, kA, { at: mar1 + DAY, statusCode: 502, durationMs: 1500, tokens: 20, costUsd: 0.2 }),
        ev(org, kA, { at: mar1 + DAY, endpoint: '/v1/models', method: 'GET', statusCode: 200, durationMs: 40 }),
      ]);
      await usage.write([
        // Key B: 5 requests to /embeddings on the last moment of March, no durations.
        ...Array.from({ length: 5 }, () => check(org, kB, { at: mar31End, endpoint: '/v1/embeddings' })),
        ev(org, kB, { at: mar31End, endpoint: '/v1/embeddings', tokens: 7 }),
        // The first moment of April and the last of February belong to other months.
        check(org, kB, { at: mar31End + 1, endpoint: '/v1/embeddings' }),
        check(org, kC, { at: mar1 - 1 }),
        // Another organization's usage is never counted.
        check(newId('org', T0 - 1), kA, { at: mar1 }),
      ]);
    });

    it('totals, by endpoint (requests, most first), by key and by day (in order)', async () => {
      const s = await usage.stats(org, '2026-03');
      expect(s.organizationId).toBe(org);
      expect(s.month).toBe('2026-03');
      expect(s.keyId).toBe('');
      expect(s.totals).toEqual({
        requests: 9,
        errors4xx: 1,
        errors5xx: 1,
        tokens: 127,
        costUsd: 0.3,
        avgDurationMs: (10 + 10 + 1500 + 40) / 4,
        // 4 durations: the 95th percentile is the 4th, 1500 ms, in the (1000, 2000] bucket.
        p95DurationMs: 2000,
      });
      expect(s.byEndpoint.map((e) => [e.endpoint, e.method, e.totals?.requests])).toEqual([
        ['/v1/embeddings', 'POST', 5],
        ['/v1/chat/completions', 'POST', 3],
        ['/v1/models', 'GET', 1],
      ]);
      expect(s.byEndpoint[2]!.totals).toEqual({
        requests: 1,
        errors4xx: 0,
        errors5xx: 0,
        tokens: 0,
        costUsd: 0,
        avgDurationMs: 40,
        p95DurationMs: 50,
      });
      // No durations reported: avg and p95 are unset.
      expect(s.byEndpoint[0]!.totals).toEqual({ requests: 5, errors4xx: 0, errors5xx: 0, tokens: 7, costUsd: 0 });
      expect(s.byEndpoint[0]!.totals).not.toHaveProperty('avgDurationMs');
      expect(s.byEndpoint[0]!.totals).not.toHaveProperty('p95DurationMs');
      expect(s.byKey.map((k) => [k.keyId, k.totals?.requests, k.totals?.tokens])).toEqual([
        [kB, 5, 7],
        [kA, 4, 120],
      ]);
      expect(s.byDay.map((d) => [d.day, d.totals?.requests, d.totals?.errors4xx, d.totals?.errors5xx, d.totals?.p95DurationMs])).toEqual([
        ['2026-03-01', 2, 1, 0, 10],
        ['2026-03-02', 2, 0, 1, 2000],
        ['2026-03-31', 5, 0, 0, undefined],
      ]);
    });

    it('months are UTC calendar months', async () => {
      expect(monthOf(Date.UTC(2026, 2, 31, 23, 59, 59, 999))).toBe('2026-03');
      expect(monthOf(Date.UTC(2026, 3, 1))).toBe('2026-04');
      const apr = await usage.stats(org, '2026-04');
      expect(apr.totals?.requests).toBe(1);
      expect(apr.byDay.map((d) => d.day)).toEqual(['2026-04-01']);
      expect(apr.byKey.map((k) => k.keyId)).toEqual([kB]);
      const feb = await usage.stats(org, '2026-02');
      expect(feb.byDay.map((d) => d.day)).toEqual(['2026-02-28']);
      expect(feb.byKey.map((k) => k.keyId)).toEqual([kC]);
    });

    it('filters by key', async () => {
      const s = await usage.stats(org, '2026-03', kA);
      expect(s.keyId).toBe(kA);
      expect(s.totals).toMatchObject({ requests: 4, errors4xx: 1, errors5xx: 1, tokens: 120 });
      expect(s.totals.costUsd).toBeCloseTo(0.3, 9);
      expect(s.byKey.map((k) => k.keyId)).toEqual([kA]);
      expect(s.byEndpoint.map((e) => e.endpoint)).toEqual(['/v1/chat/completions', '/v1/models']);
      expect(s.byDay.map((d) => d.day)).toEqual(['2026-03-01', '2026-03-02']);

      const none = await usage.stats(org, '2026-03', kC);
      expect(none.totals).toEqual({ requests: 0, errors4xx: 0, errors5xx: 0, tokens: 0, costUsd: 0 });
      expect(none.byEndpoint).toEqual([]);
      expect(none.byKey).toEqual([]);
      expect(none.byDay).toEqual([]);
    });

    it('rejects a malformed month', async () => {
      for (const m of ['2026-3', '2026-13', '2026-00', '', '2026-03-01', "2026-03' or 1=1"]) {
        await expect(usage.stats(org, m)).rejects.toBeInstanceOf(InvalidArgumentError);
      }
      await expect(usage.stats(org, 'x')).rejects.toMatchObject({ field: 'month' });
    });
  });

  it('retention: purgeEventsBefore removes only older raw events and keeps the aggregates', async () => {
    const org = orgId();
    const key = keyId();
    const now = T0 + 40 * DAY;
    const cutoff = retentionCutoff(now, 35);
    expect(cutoff.getTime()).toBe(now - 35 * DAY);
    await usage.write([
      check(org, key, { at: cutoff.getTime() - 10 * DAY }),
      check(org, key, { at: cutoff.getTime() - 1 }),
      check(org, key, { at: cutoff.getTime() }),
      check(org, key, { at: now }),
    ]);
    const monthlyBefore = await aggRows('usage_monthly', org);
    const dailyBefore = await aggRows('usage_daily', org);
    const otherOrgs = await knex('usage_events')
      .whereNot('organization_id', org)
      .andWhere('at', '>=', dialect === 'postgres' ? cutoff : cutoff.getTime())
      .count({ n: '*' });

    const removed = await usage.purgeEventsBefore(cutoff);
    expect(removed).toBeGreaterThanOrEqual(2);
    expect((await rawEvents(org)).map((e) => e.at)).toEqual([cutoff.getTime(), now]);
    expect(await aggRows('usage_monthly', org)).toEqual(monthlyBefore);
    expect(await aggRows('usage_daily', org)).toEqual(dailyBefore);
    // Newer events of every organization are kept.
    const after = await knex('usage_events')
      .whereNot('organization_id', org)
      .andWhere('at', '>=', dialect === 'postgres' ? cutoff : cutoff.getTime())
      .count({ n: '*' });
    expect(Number(after[0]!.n)).toBe(Number(otherOrgs[0]!.n));
    expect(
      await knex('usage_events')
        .where('at', '<', dialect === 'postgres' ? cutoff : cutoff.getTime())
        .count({ n: '*' }),
    ).toEqual([{ n: dialect === 'postgres' ? '0' : 0 }]);
    expect(await usage.purgeEventsBefore(cutoff)).toBe(0);
  });
});
