/**
 * The usage store's writes on real SQLite and PostgreSQL: raw events, daily/monthly
 * aggregates upserted across batches, skipped events and the retention purge.
 */
import { dayOf, retentionCutoff } from '../src/usage/store';
import type { UsageEvent } from '../src/usage/types';
import { DIALECTS } from './support/databases';
import { DAY, hist, T0, usageStoreOn, zeros, type AggRow } from './support/usage-store';

describe.each(DIALECTS)('usage store on %s', (dialect) => {
  const store = usageStoreOn(dialect);
  const { orgId, keyId, ev, check, aggRows, rawEvents } = store;

  it('writes raw events as given, with nulls for what an event did not report', async () => {
    const org = orgId();
    const key = keyId();
    await store.usage.writeEvents([
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
    await store.usage.writeEvents([
      check(org, key),
      check(org, key),
      check(org, key),
      ev(org, key, { statusCode: 200, durationMs: 12, tokens: 100, costUsd: 0.01 }),
      ev(org, key, { statusCode: 200, durationMs: 3 }),
    ]);
    // Batch 2: errors of both classes and a slow request, same day; an entry without duration.
    await store.usage.writeEvents([
      ev(org, key, { statusCode: 404, durationMs: 4 }),
      ev(org, key, { statusCode: 429 }),
      ev(org, key, { statusCode: 503, durationMs: 1500, tokens: 50, costUsd: 0.02 }),
      ev(org, key, { statusCode: 302, source: 'api', tokens: 7 }),
    ]);
    // Batch 3: day 2 of the same month, and a batch holding only Checks.
    await store.usage.writeEvents([check(org, key, { at: d2 }), check(org, key, { at: d2 })]);
    // Batch 4: more durations on day 1 (a row that already has a histogram).
    await store.usage.writeEvents([
      ev(org, key, { at: d1 + 1000, statusCode: 500, durationMs: 12 }),
      ev(org, key, { at: d1, durationMs: 70000 }),
    ]);

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
    await store.usage.writeEvents(batch);
    await store.usage.writeEvents(batch);
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
    await Promise.all(Array.from({ length: 8 }, () => store.usage.writeEvents(batch)));
    const [m] = await aggRows('usage_monthly', org);
    expect(m).toMatchObject({ requests: 8, errors5xx: 8, tokens: 24, duration_count: 8, duration_buckets: hist({ 5: 8 }) });
  });

  it('skips events that cannot be stored instead of failing the batch; cuts over-long strings', async () => {
    const org = orgId();
    const key = keyId();
    const skipped = store.usage.skippedEvents;
    await store.usage.writeEvents([
      ev(org, key, { at: Number.NaN }),
      ev(org, '', {}),
      check(org, key, { endpoint: '/x'.repeat(400) + '\u0000', method: 'VERYLONGMETHODNAME', requestId: 'r'.repeat(300) }),
    ]);
    expect(store.usage.skippedEvents).toBe(skipped + 2);
    const [r] = await rawEvents(org);
    expect(String(r!.endpoint)).toHaveLength(512);
    expect(String(r!.method)).toHaveLength(16);
    expect(String(r!.request_id)).toHaveLength(128);
    expect((await aggRows('usage_monthly', org))[0]!.requests).toBe(1);
  });

  it('retention: purgeEventsBefore removes only older raw events and keeps the aggregates', async () => {
    const org = orgId();
    const key = keyId();
    const now = T0 + 40 * DAY;
    const cutoff = retentionCutoff(now, 35);
    expect(cutoff.getTime()).toBe(now - 35 * DAY);
    await store.usage.writeEvents([
      check(org, key, { at: cutoff.getTime() - 10 * DAY }),
      check(org, key, { at: cutoff.getTime() - 1 }),
      check(org, key, { at: cutoff.getTime() }),
      check(org, key, { at: now }),
    ]);
    const monthlyBefore = await aggRows('usage_monthly', org);
    const dailyBefore = await aggRows('usage_daily', org);
    const otherOrgs = await store
      .knex('usage_events')
      .whereNot('organization_id', org)
      .andWhere('at', '>=', dialect === 'postgres' ? cutoff : cutoff.getTime())
      .count({ n: '*' });

    const removed = await store.usage.purgeEventsBefore(cutoff);
    expect(removed).toBeGreaterThanOrEqual(2);
    expect((await rawEvents(org)).map((e) => e.at)).toEqual([cutoff.getTime(), now]);
    expect(await aggRows('usage_monthly', org)).toEqual(monthlyBefore);
    expect(await aggRows('usage_daily', org)).toEqual(dailyBefore);
    // Newer events of every organization are kept.
    const after = await store
      .knex('usage_events')
      .whereNot('organization_id', org)
      .andWhere('at', '>=', dialect === 'postgres' ? cutoff : cutoff.getTime())
      .count({ n: '*' });
    expect(Number(after[0]!.n)).toBe(Number(otherOrgs[0]!.n));
    expect(
      await store
        .knex('usage_events')
        .where('at', '<', dialect === 'postgres' ? cutoff : cutoff.getTime())
        .count({ n: '*' }),
    ).toEqual([{ n: dialect === 'postgres' ? '0' : 0 }]);
    expect(await store.usage.purgeEventsBefore(cutoff)).toBe(0);
  });
});
