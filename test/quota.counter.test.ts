/**
 * The database-synced quota counter (backend `memory`) on real SQLite and PostgreSQL
 * databases. Replicas are separate counters with their own ORM (own connections) on
 * one database. Time only through nowMs; no timers, no sleeps: flush() is called
 * where a sync interval would have passed.
 */
import type { EntityManager } from '@mikro-orm/knex';
import { billingPeriod } from '../src/limits/billing';
import { DbSyncedQuotaCounter } from '../src/limits/quota-memory';
import { createQuotaCounter } from '../src/limits/quota';
import type { QuotaOrg } from '../src/limits/types';
import { migrate, openOrm, type Orm } from '../src/store/orm';
import { SqlQuotaStore } from '../src/store/quota-counters';
import { createTestDatabase, DIALECTS, type TestDatabase } from './support/databases';

/** 2026-03-10 12:00 UTC: anchor 1 → [Mar 1, Apr 1). */
const T = Date.UTC(2026, 2, 10, 12);
const MAR = Date.UTC(2026, 2, 1);
const APR = Date.UTC(2026, 3, 1);

let seq = 0;
const org = (monthlyQuota: number, billingAnchorDay = 1): QuotaOrg => ({ id: `org_quota${++seq}`, monthlyQuota, billingAnchorDay });

describe.each(DIALECTS)('DbSyncedQuotaCounter on %s', (dialect) => {
  let db: TestDatabase;
  let orms: Orm[];
  let main: Orm;
  let table: SqlQuotaStore;

  beforeEach(async () => {
    db = await createTestDatabase(dialect);
    main = await openOrm(db.config);
    await migrate(main);
    orms = [main];
    table = new SqlQuotaStore(main, dialect);
  });

  afterEach(async () => {
    for (const o of orms) await o.close(true);
    await db.dispose();
  });

  /** A replica: its own ORM (connections) on the same database. */
  async function replica(): Promise<DbSyncedQuotaCounter> {
    const orm = await openOrm(db.config);
    orms.push(orm);
    latest = orm;
    return new DbSyncedQuotaCounter({ store: new SqlQuotaStore(orm, dialect), syncIntervalMs: 5000 });
  }

  const consume = async (c: DbSyncedQuotaCounter, o: QuotaOrg, now = T) => c.consume(o, now);
  const stored = (o: QuotaOrg, startMs = MAR) => table.count(o.id, startMs);
  const knexOf = (orm: Orm) => (orm.em as unknown as EntityManager).getKnex();
  const knex = () => knexOf(main);
  // Failures are injected through the counter's own ORM: on SQLite that is the
  // counter's one connection (knex pools one per SQLite database).
  let latest: Orm | undefined;
  const ddl = () => knexOf(latest ?? main);

  /** Consumes n times; returns how many were allowed. */
  async function spend(c: DbSyncedQuotaCounter, o: QuotaOrg, n: number, now = T): Promise<number> {
    let allowed = 0;
    for (let i = 0; i < n; i++) if ((await consume(c, o, now)).allowed) allowed++;
    return allowed;
  }

  it('the boundary: limit 3 allows 3 and denies the 4th; used is reported before and after a flush', async () => {
    const c = await replica();
    const o = org(3);
    const period = billingPeriod(1, T);
    for (let i = 1; i <= 3; i++) expect(await consume(c, o)).toEqual({ allowed: true, limit: 3, used: i, period });
    expect(await consume(c, o)).toEqual({ allowed: false, limit: 3, used: 3, period });
    expect(await consume(c, o, T + 1000)).toEqual({ allowed: false, limit: 3, used: 3, period });
    expect(await c.used(o, T)).toEqual({ used: 3, period });
    expect(await stored(o)).toBe(0);
    await c.flush();
    expect(await stored(o)).toBe(3);
    expect(await c.used(o, T)).toEqual({ used: 3, period });
    expect(c.stats()).toMatchObject({ backend: 'memory', pending: 0, allowed: 3, denied: 2, syncErrors: 0, loadErrors: 0 });
    // Known periods are decided synchronously (no database round trip).
    expect(c.consume(o, T)).not.toBeInstanceOf(Promise);
  });

  it('a new period starts from 0; the old period is written and then dropped from memory', async () => {
    const c = await replica();
    const o = org(2);
    expect(await spend(c, o, 3)).toBe(2);
    // The last ms of the period still counts against it.
    expect((await consume(c, o, APR - 1)).allowed).toBe(false);
    const next = await consume(c, o, APR);
    expect(next).toEqual({ allowed: true, limit: 2, used: 1, period: billingPeriod(1, APR) });
    expect(next.period.start.getTime()).toBe(APR);
    expect(c.stats().trackedPeriods).toBe(2);
    await c.flush();
    expect(await stored(o, MAR)).toBe(2);
    expect(await stored(o, APR)).toBe(1);
    // Written, period over: forgotten at the next flush.
    await c.flush();
    expect(c.stats().trackedPeriods).toBe(1);
    expect(await c.used(o, APR + 5)).toMatchObject({ used: 1 });
    expect(await c.used(o, T)).toMatchObject({ used: 2 });
  });

  it('an anchor day change is a different period (a different row)', async () => {
    const c = await replica();
    const o = org(5);
    await spend(c, o, 2);
    const moved = { ...o, billingAnchorDay: 15 }; // T is Mar 10 → [Feb 15, Mar 15)
    expect(await consume(c, moved)).toMatchObject({ allowed: true, used: 1 });
    await c.flush();
    expect(await stored(o, MAR)).toBe(2);
    expect(await stored(o, Date.UTC(2026, 1, 15))).toBe(1);
  });

  it("two replicas on one database: after both flush, each sees the other's count", async () => {
    const a = await replica();
    const b = await replica();
    const o = org(100);
    expect(await spend(a, o, 2)).toBe(2);
    expect(await spend(b, o, 3)).toBe(3);
    // Before any sync each sees only its own requests.
    expect((await consume(a, o)).used).toBe(3);
    expect((await consume(b, o)).used).toBe(4);
    await a.flush(); // writes 3 → total 3
    await b.flush(); // writes 4 → total 7, and b sees it at once (RETURNING)
    expect((await consume(b, o)).used).toBe(8);
    await a.flush(); // a has nothing pending: re-reads the total (b's 8th is still pending at b)
    expect((await consume(a, o)).used).toBe(8);
    await b.flush();
    await a.flush();
    expect(await stored(o)).toBe(9);
    // used() reads the database now: b sees a's last request before b flushes again.
    expect(await b.used(o, T)).toMatchObject({ used: 9 });
    expect(await a.used(o, T)).toMatchObject({ used: 9 });
  });

  it("bounded overshoot with two replicas before a sync (at most one replica's requests per interval), exact after", async () => {
    const a = await replica();
    const b = await replica();
    const o = org(5);
    // Both learn the period (count 0) before either syncs; then each allows up to the limit on its own.
    expect(await spend(a, o, 7)).toBe(5);
    expect(await spend(b, o, 7)).toBe(5);
    // Overshoot 5 = (replicas − 1) × (requests allowed per replica in the interval), never more than (replicas − 1) × limit.
    await a.flush();
    await b.flush();
    await a.flush();
    expect(await stored(o)).toBe(10);
    expect(await consume(a, o)).toMatchObject({ allowed: false, used: 10 });
    expect(await consume(b, o)).toMatchObject({ allowed: false, used: 10 });

    // After a sync the quota is exact across replicas.
    const p = org(5);
    expect(await spend(b, p, 1)).toBe(1); // b knows the period
    expect(await spend(a, p, 2)).toBe(2);
    await a.flush();
    await b.flush();
    await a.flush(); // both know the total: 3
    expect(await spend(a, p, 5)).toBe(2); // exactly limit − 3
    await a.flush();
    await b.flush();
    expect(await consume(b, p)).toMatchObject({ allowed: false, used: 5 });
    expect(await stored(p)).toBe(5);

    // A replica that loads a period after another flushed starts from the stored count.
    const q = org(4);
    expect(await spend(a, q, 3)).toBe(3);
    await a.flush();
    expect(await spend(b, q, 3)).toBe(1);
    await b.flush();
    expect(await stored(q)).toBe(4);
  });

  it('one replica: no overshoot at all, across any number of flushes', async () => {
    const c = await replica();
    const o = org(7);
    let allowed = 0;
    for (let i = 0; i < 20; i++) {
      if ((await consume(c, o, T + i)).allowed) allowed++;
      if (i % 3 === 0) await c.flush();
    }
    await c.flush();
    expect(allowed).toBe(7);
    expect(await stored(o)).toBe(7);
  });

  it('concurrent first consumes of a period share one load and stay exact', async () => {
    const c = await replica();
    const o = org(3);
    const ds = await Promise.all(Array.from({ length: 8 }, () => consume(c, o, T)));
    expect(ds.filter((d) => d.allowed)).toHaveLength(3);
    expect(ds.map((d) => d.used).sort()).toEqual([1, 2, 3, 3, 3, 3, 3, 3]);
    expect(c.stats().trackedPeriods).toBe(1);
  });

  it('flush is idempotent: repeated and concurrent flushes count each request once', async () => {
    const c = await replica();
    const o = org(10);
    await spend(c, o, 4);
    await c.flush();
    await c.flush();
    await Promise.all([c.flush(), c.flush(), c.flush()]);
    expect(await stored(o)).toBe(4);
    await spend(c, o, 2);
    await Promise.all([c.flush(), c.flush()]);
    await c.flush();
    expect(await stored(o)).toBe(6);
    expect(await c.used(o, T)).toMatchObject({ used: 6 });
  });

  it('requests counted while a flush is in flight are kept for the next flush', async () => {
    const c = await replica();
    const o = org(10);
    await spend(c, o, 3);
    const f = c.flush(); // takes its snapshot at once (no flush running)
    // A known period is decided synchronously: these two are counted during the flush.
    expect(c.consume(o, T)).toMatchObject({ allowed: true, used: 4 });
    expect(c.consume(o, T)).toMatchObject({ allowed: true, used: 5 });
    await f;
    expect(await stored(o)).toBe(3);
    expect(c.stats().pending).toBe(2);
    await c.flush();
    expect(await stored(o)).toBe(5);
    expect((await consume(c, o)).used).toBe(6);
  });

  /**
   * What p rejects with, as text. Not `rejects.toThrow`: better-sqlite3 registers its
   * (ES5-style) error class with the native addon once per process, so in a jest worker
   * that ran another SQLite test file first, SQLite errors belong to that file's realm
   * and toThrow takes them for "did not throw". This, not a stale schema, is why these
   * tests once failed on SQLite under the full suite only.
   */
  async function rejectionOf(p: Promise<unknown>): Promise<string> {
    try {
      await p;
    } catch (e) {
      return String((e as { message?: unknown } | null)?.message ?? e);
    }
    throw new Error('expected a rejection');
  }

  /**
   * Makes the counter's writes fail, and undoes it. SQLite: its connection turns
   * query-only (no schema change; reads still work). PostgreSQL: the table goes away.
   */
  const breakWrites = (orm: Orm) =>
    knexOf(orm).raw(dialect === 'sqlite' ? 'pragma query_only = on' : 'alter table quota_counters rename to quota_counters_away');
  const restoreWrites = (orm: Orm) =>
    knexOf(orm).raw(dialect === 'sqlite' ? 'pragma query_only = off' : 'alter table quota_counters_away rename to quota_counters');

  it('a failed flush (writes refused) loses nothing and counts nothing twice', async () => {
    const c = await replica();
    const own = latest!;
    const o = org(10);
    await spend(c, o, 3);
    await breakWrites(own);
    expect(await rejectionOf(c.flush())).toMatch(dialect === 'sqlite' ? /readonly/ : /quota_counters/);
    expect(c.stats()).toMatchObject({ pending: 3, syncErrors: 1 });
    // Still deciding on the local count meanwhile.
    expect(await consume(c, o)).toMatchObject({ allowed: true, used: 4 });
    expect(await rejectionOf(c.flush())).toMatch(dialect === 'sqlite' ? /readonly/ : /quota_counters/);
    await restoreWrites(own);
    await c.flush();
    expect(await stored(o)).toBe(4);
    expect(c.stats()).toMatchObject({ pending: 0, syncErrors: 2 });
    await c.flush();
    expect(await stored(o)).toBe(4);
  });

  it('a flush failing on its second statement rolls back the first: retried, nothing is counted twice', async () => {
    const c = await replica();
    // 500 upserts go in one statement: 501 periods make two statements, the poisoned one last.
    const orgs = Array.from({ length: 500 }, () => org(10));
    const poisoned: QuotaOrg = { id: 'org_poison', monthlyQuota: 10, billingAnchorDay: 1 };
    for (const [i, o] of orgs.entries()) await spend(c, o, 1 + (i % 3));
    await spend(c, poisoned, 2);
    if (dialect === 'postgres') {
      await ddl().raw(
        `create function kw_poison() returns trigger language plpgsql as $$ begin if new.organization_id = 'org_poison' then raise exception 'poisoned'; end if; return new; end $$`,
      );
      await ddl().raw('create trigger kw_poison before insert on quota_counters for each row execute function kw_poison()');
    } else {
      await ddl().raw(
        `create trigger kw_poison before insert on quota_counters when new.organization_id = 'org_poison' begin select raise(abort, 'poisoned'); end`,
      );
    }
    expect(await rejectionOf(c.flush())).toMatch(/poisoned/);
    // The first statement's 500 upserts were rolled back with the transaction.
    expect(await knex()('quota_counters').count({ n: '*' })).toEqual([{ n: dialect === 'postgres' ? '0' : 0 }]);
    expect(c.stats().pending).toBe(orgs.reduce((n, _o, i) => n + 1 + (i % 3), 0) + 2);
    await ddl().raw(dialect === 'postgres' ? 'drop trigger kw_poison on quota_counters' : 'drop trigger kw_poison');
    await c.flush();
    for (const [i, o] of orgs.entries()) expect(await stored(o)).toBe(1 + (i % 3));
    expect(await stored(poisoned)).toBe(2);
    expect(c.stats().pending).toBe(0);
  });

  it('a failed first load counts locally from 0 (fail-open), and the next flush restores the true total', async () => {
    const a = await replica();
    const errors: unknown[] = [];
    const orm = await openOrm(db.config);
    orms.push(orm);
    const c = new DbSyncedQuotaCounter({ store: new SqlQuotaStore(orm, dialect), syncIntervalMs: 5000, onError: (e) => errors.push(e) });
    const o = org(3);
    expect(await spend(a, o, 2)).toBe(2);
    await a.flush();
    // The table goes away, on c's own connection.
    await knexOf(orm).raw('alter table quota_counters rename to quota_counters_away');
    // The stored 2 cannot be read: the period starts here at 0.
    expect(await consume(c, o)).toMatchObject({ allowed: true, used: 1 });
    expect(c.stats().loadErrors).toBe(1);
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toMatch(/quota_counters/);
    // used() reports the failure instead of guessing.
    expect(await rejectionOf(c.used(o, T))).toMatch(/quota_counters/);
    await knexOf(orm).raw('alter table quota_counters_away rename to quota_counters');
    await c.flush();
    expect(await stored(o)).toBe(3);
    expect(await consume(c, o)).toMatchObject({ allowed: false, used: 3 });
  });

  it('idle periods are dropped from memory and reloaded from the database on their next use', async () => {
    const orm = orms[0]!;
    const c = new DbSyncedQuotaCounter({ store: new SqlQuotaStore(orm, dialect), syncIntervalMs: 5000, idleFlushes: 2 });
    const other = await replica();
    const o = org(10);
    await spend(c, o, 2);
    await c.flush(); // written
    await c.flush(); // idle 1: refreshed
    expect(c.stats().trackedPeriods).toBe(1);
    await c.flush(); // idle 2: dropped
    expect(c.stats().trackedPeriods).toBe(0);
    await spend(other, o, 3);
    await other.flush();
    expect(await consume(c, o)).toMatchObject({ allowed: true, used: 6 });
  });

  it("close() flushes; start()/stop() manage an unref'd timer", async () => {
    const c = await replica();
    const o = org(10);
    c.start(60_000);
    c.start(); // restarts with syncIntervalMs
    await spend(c, o, 3);
    await c.close();
    expect(await stored(o)).toBe(3);
    c.stop();
  });

  it('createQuotaCounter without a Redis URL is the database-synced memory backend', async () => {
    const q = createQuotaCounter({ store: new SqlQuotaStore(main, dialect), syncIntervalMs: 1000 });
    expect(q.backend).toBe('memory');
    expect(q).toBeInstanceOf(DbSyncedQuotaCounter);
    const o = org(1);
    expect(await q.consume(o, T)).toMatchObject({ allowed: true, used: 1 });
    expect(await q.consume(o, T)).toMatchObject({ allowed: false, used: 1 });
    await q.close();
    expect(await stored(o)).toBe(1);
  });
});
