/**
 * The usage store's GetUsageStats numbers on real SQLite and PostgreSQL: totals, by
 * endpoint, key and day, UTC month boundaries, the key filter and malformed months.
 */
import { monthOf } from '../src/usage/store';
import { InvalidArgumentError } from '../src/errors/domain';
import { newId } from '../src/util/ids';
import { DIALECTS } from './support/databases';
import { DAY, T0, usageStoreOn } from './support/usage-store';

describe.each(DIALECTS)('usage store on %s', (dialect) => {
  const store = usageStoreOn(dialect);
  const { check, ev } = store;

  describe('stats()', () => {
    const org = newId('org', T0 - 5);
    const kA = newId('key', T0 - 4);
    const kB = newId('key', T0 - 3);
    const kC = newId('key', T0 - 2);
    beforeAll(async () => {
      const mar1 = Date.UTC(2026, 2, 1, 0, 0, 0, 0);
      const mar31End = Date.UTC(2026, 2, 31, 23, 59, 59, 999);
      await store.usage.writeEvents([
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
      await store.usage.writeEvents([
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
      const s = await store.usage.stats(org, '2026-03');
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
      const apr = await store.usage.stats(org, '2026-04');
      expect(apr.totals?.requests).toBe(1);
      expect(apr.byDay.map((d) => d.day)).toEqual(['2026-04-01']);
      expect(apr.byKey.map((k) => k.keyId)).toEqual([kB]);
      const feb = await store.usage.stats(org, '2026-02');
      expect(feb.byDay.map((d) => d.day)).toEqual(['2026-02-28']);
      expect(feb.byKey.map((k) => k.keyId)).toEqual([kC]);
    });

    it('filters by key', async () => {
      const s = await store.usage.stats(org, '2026-03', kA);
      expect(s.keyId).toBe(kA);
      expect(s.totals).toMatchObject({ requests: 4, errors4xx: 1, errors5xx: 1, tokens: 120 });
      expect(s.totals.costUsd).toBeCloseTo(0.3, 9);
      expect(s.byKey.map((k) => k.keyId)).toEqual([kA]);
      expect(s.byEndpoint.map((e) => e.endpoint)).toEqual(['/v1/chat/completions', '/v1/models']);
      expect(s.byDay.map((d) => d.day)).toEqual(['2026-03-01', '2026-03-02']);

      const none = await store.usage.stats(org, '2026-03', kC);
      expect(none.totals).toEqual({ requests: 0, errors4xx: 0, errors5xx: 0, tokens: 0, costUsd: 0 });
      expect(none.byEndpoint).toEqual([]);
      expect(none.byKey).toEqual([]);
      expect(none.byDay).toEqual([]);
    });

    it('rejects a malformed month', async () => {
      for (const m of ['2026-3', '2026-13', '2026-00', '', '2026-03-01', "2026-03' or 1=1"]) {
        await expect(store.usage.stats(org, m)).rejects.toBeInstanceOf(InvalidArgumentError);
      }
      await expect(store.usage.stats(org, 'x')).rejects.toMatchObject({ field: 'month' });
    });
  });
});
