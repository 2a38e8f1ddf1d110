/**
 * The quota counters' count() (an organization without a quota) and seed() (a quota or
 * anchor day changed), on real SQLite, PostgreSQL and Redis:
 *  - count() is synchronous and touches neither the database nor Redis; the counts
 *    reach the shared count with the next flush, and a later consume() starts from them;
 *  - seed() raises the period's count to at least the given value, after sending the
 *    replica's own counts, so that nothing is counted twice (max, never a sum).
 */
import Redis from 'ioredis';
import { DbSyncedQuotaCounter } from '../src/limits/quota-memory';
import { RedisQuotaCounter, quotaKey } from '../src/limits/quota-redis';
import type { QuotaOrg, QuotaStore } from '../src/limits/types';
import { migrate, openOrm, type Orm } from '../src/store/orm';
import { SqlQuotaStore } from '../src/store/quota-counters';
import { createTestDatabase, DIALECTS, type TestDatabase } from './support/databases';
import { describeRedis, testRedisUrl } from './support/redis';

/** Next year's March 10 (anchor 1 → March 1 .. April 1): Redis keys expire after their period, in real time. */
const YEAR = new Date().getUTCFullYear() + 1;
const T = Date.UTC(YEAR, 2, 10, 12);
const MAR = Date.UTC(YEAR, 2, 1);

let seq = 0;
const org = (monthlyQuota: number): QuotaOrg => ({ id: `org_countseed${Date.now()}x${++seq}`, monthlyQuota, billingAnchorDay: 1 });

/** A QuotaStore that counts the calls it passes on. */
function spied(store: QuotaStore): QuotaStore & { calls: number } {
  const s = {
    calls: 0,
    count: (id: string, startMs: number) => (s.calls++, store.count(id, startMs)),
    sync: (...a: Parameters<QuotaStore['sync']>) => (s.calls++, store.sync(...a)),
    raiseTo: (...a: Parameters<QuotaStore['raiseTo']>) => (s.calls++, store.raiseTo(...a)),
  };
  return s;
}

describe.each(DIALECTS)('count() and seed() on %s', (dialect) => {
  let db: TestDatabase;
  let orm: Orm;
  let table: SqlQuotaStore;
  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    orm = await openOrm(db.config);
    await migrate(orm);
    table = new SqlQuotaStore(orm, dialect);
  });
  afterAll(async () => {
    await orm.close(true);
    await db.dispose();
  });

  const memory = (store: QuotaStore = table) => new DbSyncedQuotaCounter({ store, syncIntervalMs: 5000 });

  it('memory: count() does no I/O; a flush stores the counts and a later quota starts from them', async () => {
    const store = spied(table);
    const c = memory(store);
    const o = org(0);
    for (let i = 0; i < 4; i++) expect(c.count(o, T)).toBeUndefined();
    expect(store.calls).toBe(0);
    expect(c.stats()).toMatchObject({ counted: 4, pending: 4, trackedPeriods: 1 });
    await c.flush();
    expect(await table.count(o.id, MAR)).toBe(4);
    // Only counted, nothing pending: forgotten by the flush after.
    await c.flush();
    expect(c.stats()).toMatchObject({ pending: 0, trackedPeriods: 0 });
    const limited = { ...o, monthlyQuota: 6 };
    expect((await c.consume(limited, T)).used).toBe(5);
    expect((await c.consume(limited, T)).allowed).toBe(true);
    expect(await c.consume(limited, T)).toMatchObject({ allowed: false, used: 6 });
  });

  it('memory: a consume() after unflushed counts reads the stored count under them', async () => {
    const other = memory();
    const o = org(0);
    other.count(o, T);
    other.count(o, T);
    await other.flush();
    const c = memory();
    c.count(o, T);
    const limited = { ...o, monthlyQuota: 5 };
    expect(await c.consume(limited, T)).toMatchObject({ allowed: true, used: 4 });
    expect(await c.consume(limited, T)).toMatchObject({ allowed: true, used: 5 });
    expect(await c.consume(limited, T)).toMatchObject({ allowed: false, used: 5 });
    await c.flush();
    expect(await table.count(o.id, MAR)).toBe(5);
  });

  it('memory: seed() sends its own counts first and raises to a floor, never adding', async () => {
    const c = memory();
    const o = org(10);
    c.count(o, T);
    c.count(o, T);
    expect((await c.consume(o, T)).used).toBe(3);
    // The aggregates hold the same 3: nothing is counted twice.
    await c.seed(o, T, 3);
    expect(await c.used(o, T)).toMatchObject({ used: 3 });
    expect(await table.count(o.id, MAR)).toBe(3);
    await c.seed(o, T, 7);
    expect(await c.used(o, T)).toMatchObject({ used: 7 });
    await c.seed(o, T, 5);
    expect(await c.used(o, T)).toMatchObject({ used: 7 });
    expect(await c.consume(o, T)).toMatchObject({ allowed: true, used: 8 });
    // Another replica starts from the seeded count (c's 8th is not flushed yet).
    expect(await memory().consume(o, T)).toMatchObject({ allowed: true, used: 8 });
  });

  describeRedis('with Redis', () => {
    let admin: Redis;
    const counters: RedisQuotaCounter[] = [];
    beforeAll(() => {
      admin = new Redis(testRedisUrl());
    });
    afterAll(async () => {
      for (const c of counters) await c.close();
      await admin.quit();
    });
    async function redisCounter(store: QuotaStore = table): Promise<RedisQuotaCounter> {
      const c = new RedisQuotaCounter({
        redis: testRedisUrl(),
        onFailure: 'deny',
        store,
        syncIntervalMs: 5000,
        commandTimeoutMs: 5000,
        connectTimeoutMs: 5000,
      });
      counters.push(c);
      await c.ready();
      return c;
    }

    it('redis: count() sends nothing; a flush adds the counts to Redis and the database', async () => {
      const store = spied(table);
      const c = await redisCounter(store);
      const o = org(0);
      for (let i = 0; i < 3; i++) c.count(o, T);
      expect(store.calls).toBe(0);
      expect(await admin.get(quotaKey(o.id, MAR))).toBeNull();
      expect(await c.used(o, T)).toMatchObject({ used: 3 });
      await c.flush();
      expect(await admin.get(quotaKey(o.id, MAR))).toBe('3');
      expect(await table.count(o.id, MAR)).toBe(3);
      const limited = { ...o, monthlyQuota: 4 };
      expect(await c.consume(limited, T)).toMatchObject({ allowed: true, used: 4 });
      expect(await c.consume(limited, T)).toMatchObject({ allowed: false, used: 4 });
    });

    it('redis: seed() sends its own counts first and raises to a floor, never adding', async () => {
      const c = await redisCounter();
      const o = org(10);
      c.count(o, T);
      c.count(o, T);
      await c.seed(o, T, 2);
      expect(await admin.get(quotaKey(o.id, MAR))).toBe('2');
      await c.seed(o, T, 6);
      await c.seed(o, T, 4);
      expect(await admin.get(quotaKey(o.id, MAR))).toBe('6');
      await c.flush();
      expect(await table.count(o.id, MAR)).toBe(6);
      expect(await (await redisCounter()).consume(o, T)).toMatchObject({ allowed: true, used: 7 });
    });
  });
});
