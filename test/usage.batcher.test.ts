/**
 * The usage batcher over a real usage store (SQLite, and PostgreSQL for a real
 * outage): batching, flush on demand and at `flushAt`, shared concurrent flushes,
 * events kept across a failed write and then written exactly once, and the bounded
 * buffer's drop policy.
 */
import type { EntityManager, Knex } from '@mikro-orm/knex';
import { Client } from 'pg';
import { openOrm, migrate, type Orm } from '../src/store/orm';
import { createUsageStore, type UsageStore } from '../src/usage/store';
import { UsageBatcher } from '../src/usage/batcher';
import type { UsageEvent, UsageSink } from '../src/usage/types';
import { StoreUnavailableError } from '../src/errors/domain';
import { newId } from '../src/util/ids';
import { adminPgUrl, createTestDatabase, type Dialect, type TestDatabase } from './support/databases';

const T0 = Date.UTC(2026, 4, 20, 8, 0, 0);

interface Env {
  db: TestDatabase;
  orm: Orm;
  store: UsageStore;
  knex: Knex;
  /** The real store, counting its writes (batch sizes). */
  sink: UsageSink & { writes: number[] };
  close(): Promise<void>;
}

async function openEnv(dialect: Dialect): Promise<Env> {
  const db = await createTestDatabase(dialect);
  const orm = await openOrm(db.config);
  await migrate(orm);
  const store = createUsageStore(orm, dialect);
  const writes: number[] = [];
  return {
    db,
    orm,
    store,
    knex: (orm.em as unknown as EntityManager).getKnex(),
    sink: {
      writes,
      write(events) {
        writes.push(events.length);
        return store.write(events);
      },
    },
    async close() {
      await orm.close(true);
      await db.dispose();
    },
  };
}

let n = 0;
function newOrg(): { org: string; key: string } {
  n++;
  return { org: newId('org', T0 + n), key: newId('key', T0 + n) };
}

/** A request (Check) event, or a detail-only one, tagged by requestId. */
function event(ids: { org: string; key: string }, tag: string, requests: 0 | 1): UsageEvent {
  return {
    at: T0,
    organizationId: ids.org,
    keyId: ids.key,
    requestId: tag,
    endpoint: '/v1/chat',
    method: 'POST',
    requests,
    source: requests === 1 ? 'check' : 'accesslog',
    ...(requests === 0 && { statusCode: 200, durationMs: 5 }),
  };
}

/** request_id of the stored raw events of an organization, in insertion order. */
async function storedTags(knex: Knex, org: string): Promise<string[]> {
  const rows = await knex('usage_events').where('organization_id', org).orderBy('id').select('request_id');
  return rows.map((r: { request_id: string }) => r.request_id);
}

async function monthlyRequests(knex: Knex, org: string): Promise<number> {
  const rows = await knex('usage_monthly').where('organization_id', org).select('requests');
  return (rows as { requests: number | string }[]).reduce((s, r) => s + Number(r.requests), 0);
}

describe('UsageBatcher on sqlite', () => {
  let env: Env;
  beforeAll(async () => {
    env = await openEnv('sqlite');
  });
  afterAll(async () => {
    await env.close();
  });
  beforeEach(() => {
    env.sink.writes.length = 0;
  });

  it('writes at most maxBatch events per write, oldest first, and one flush() writes everything recorded before it', async () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 10_000, flushAt: 10_000, maxBatch: 100 });
    for (let i = 0; i < 250; i++) b.record(event(ids, `e${i}`, i % 3 === 0 ? 1 : 0));
    await b.flush();
    expect(env.sink.writes).toEqual([100, 100, 50]);
    expect(b.stats()).toEqual({ buffered: 0, inFlight: 0, flushed: 250, flushErrors: 0, dropped: 0, flushes: 3 });
    expect(await storedTags(env.knex, ids.org)).toEqual(Array.from({ length: 250 }, (_, i) => `e${i}`));
    expect(await monthlyRequests(env.knex, ids.org)).toBe(84);
  });

  it('N records make no write until flushed, then exactly one write of all of them', async () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 10_000, flushAt: 10_000 });
    for (let i = 0; i < 250; i++) b.record(event(ids, `e${i}`, (i % 2) as 0 | 1));
    expect(env.sink.writes).toEqual([]);
    expect(b.stats()).toEqual({ buffered: 250, inFlight: 0, flushed: 0, flushErrors: 0, dropped: 0, flushes: 0 });
    await b.flush();
    expect(env.sink.writes).toEqual([250]);
    expect(b.stats()).toEqual({ buffered: 0, inFlight: 0, flushed: 250, flushErrors: 0, dropped: 0, flushes: 1 });
    expect(await storedTags(env.knex, ids.org)).toEqual(Array.from({ length: 250 }, (_, i) => `e${i}`));
    expect(await monthlyRequests(env.knex, ids.org)).toBe(125);
    // Nothing buffered: no write.
    await b.flush();
    expect(env.sink.writes).toEqual([250]);
  });

  it('concurrent flushes share one write; a flush during a write also covers what was recorded meanwhile', async () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 1000, flushAt: 1000 });
    for (let i = 0; i < 5; i++) b.record(event(ids, `a${i}`, 1));
    const f1 = b.flush();
    const f2 = b.flush();
    expect(b.stats()).toMatchObject({ buffered: 0, inFlight: 5 });
    await Promise.all([f1, f2]);
    expect(env.sink.writes).toEqual([5]);

    for (let i = 0; i < 3; i++) b.record(event(ids, `b${i}`, 1));
    const g1 = b.flush();
    b.record(event(ids, 'late', 0));
    const g2 = b.flush();
    const g3 = b.flush();
    expect(g3).toBe(g2);
    await Promise.all([g1, g2, g3]);
    expect(env.sink.writes).toEqual([5, 3, 1]);
    expect(await storedTags(env.knex, ids.org)).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'b0', 'b1', 'b2', 'late']);
  });

  it('reaching flushAt starts a flush from record() without waiting for it', async () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 1000, flushAt: 4 });
    for (let i = 0; i < 3; i++) b.record(event(ids, `e${i}`, 1));
    expect(env.sink.writes).toEqual([]);
    b.record(event(ids, 'e3', 1));
    // The write started synchronously; record() returned at once.
    expect(env.sink.writes).toEqual([4]);
    expect(b.stats()).toMatchObject({ buffered: 0, inFlight: 4 });
    // While it runs, more events buffer (even past flushAt) without a second write...
    for (let i = 4; i < 9; i++) b.record(event(ids, `e${i}`, 1));
    expect(env.sink.writes).toEqual([4]);
    // ...and once it is done, the buffer over flushAt is flushed in turn.
    await b.flush();
    expect(env.sink.writes).toEqual([4, 5]);
    expect(await storedTags(env.knex, ids.org)).toEqual(Array.from({ length: 9 }, (_, i) => `e${i}`));
  });

  it('a full buffer drops the oldest detail-only events first, and request events only when nothing else can go', async () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 5, flushAt: 100 });
    for (const [tag, r] of [
      ['c1', 1],
      ['d1', 0],
      ['c2', 1],
      ['d2', 0],
      ['c3', 1],
    ] as const)
      b.record(event(ids, tag, r));
    expect(b.stats()).toMatchObject({ buffered: 5, dropped: 0 });
    b.record(event(ids, 'c4', 1)); // drops d1
    b.record(event(ids, 'd3', 0)); // drops d2
    b.record(event(ids, 'c5', 1)); // drops d3
    expect(b.stats()).toMatchObject({ buffered: 5, dropped: 3 });
    b.record(event(ids, 'd4', 0)); // only request events are buffered: d4 itself goes
    expect(b.stats()).toMatchObject({ buffered: 5, dropped: 4 });
    b.record(event(ids, 'c6', 1)); // nothing but request events: the oldest, c1, goes
    expect(b.stats()).toMatchObject({ buffered: 5, dropped: 5 });
    await b.flush();
    expect(await storedTags(env.knex, ids.org)).toEqual(['c2', 'c3', 'c4', 'c5', 'c6']);
    expect(b.stats()).toEqual({ buffered: 0, inFlight: 0, flushed: 5, flushErrors: 0, dropped: 5, flushes: 1 });
  });

  it('record() stays O(1) under sustained overflow', () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 1000, flushAt: 1_000_000 });
    const e0 = event(ids, 'x', 0);
    const e1 = event(ids, 'y', 1);
    const t = process.hrtime.bigint();
    for (let i = 0; i < 300_000; i++) b.record(i % 3 === 0 ? e1 : e0);
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    expect(b.stats()).toMatchObject({ buffered: 1000, dropped: 299_000 });
    expect(ms).toBeLessThan(2000);
  });

  it('start() flushes on an unref()ed interval; stop() ends it', async () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 1000, flushAt: 1000 });
    b.start(60_000);
    const timer = (b as unknown as { timer: NodeJS.Timeout }).timer;
    expect(timer.hasRef()).toBe(false);
    b.stop();
    expect((b as unknown as { timer?: NodeJS.Timeout }).timer).toBeUndefined();

    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    try {
      b.start(5000);
      b.record(event(ids, 'tick', 1));
      jest.advanceTimersByTime(4999);
      expect(env.sink.writes).toEqual([]);
      jest.advanceTimersByTime(1);
      expect(env.sink.writes).toEqual([1]);
      b.stop();
      b.record(event(ids, 'after-stop', 1));
      jest.advanceTimersByTime(60_000);
      expect(env.sink.writes).toEqual([1]);
    } finally {
      jest.useRealTimers();
    }
    await b.flush();
    expect(await storedTags(env.knex, ids.org)).toEqual(['tick', 'after-stop']);
  });
});

describe('UsageBatcher across a real PostgreSQL outage', () => {
  let env: Env;
  let dbName: string;

  const asAdmin = async (sql: string, params: unknown[] = []) => {
    const c = new Client({ connectionString: adminPgUrl() });
    await c.connect();
    try {
      await c.query(sql, params);
    } finally {
      await c.end();
    }
  };
  /** The database refuses new connections and its existing ones are terminated. */
  const cutOff = async () => {
    await asAdmin(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS false`);
    await asAdmin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [dbName]);
  };
  const restore = () => asAdmin(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`);

  beforeAll(async () => {
    env = await openEnv('postgres');
    dbName = decodeURIComponent(new URL(env.db.config.url).pathname.slice(1));
    expect(dbName).toMatch(/^keyward_test_[0-9a-f]+$/);
  });
  afterAll(async () => {
    await restore().catch(() => undefined);
    await env.close();
  });

  it('a failed write keeps its events in order (bounded, detail events dropped first); a later flush writes them exactly once', async () => {
    const ids = newOrg();
    const errors: unknown[] = [];
    const b = new UsageBatcher(env.sink, { maxBuffered: 10, flushAt: 10, onError: (e) => errors.push(e) });
    // Warm the pool, so the outage also breaks an open connection.
    b.record(event(ids, 'warm', 1));
    await b.flush();
    expect(b.stats()).toMatchObject({ flushed: 1, flushErrors: 0 });

    const first: [string, 0 | 1][] = [
      ['c0', 1],
      ['d0', 0],
      ['c1', 1],
      ['d1', 0],
      ['c2', 1],
      ['d2', 0],
      ['c3', 1],
      ['d3', 0],
      ['c4', 1],
    ];
    for (const [tag, r] of first) b.record(event(ids, tag, r));
    expect(env.sink.writes).toEqual([1]);

    await cutOff();
    try {
      // The 10th event reaches flushAt: the write starts, and fails.
      b.record(event(ids, 'c5', 1));
      expect(env.sink.writes).toEqual([1, 10]);
      // Recorded while the doomed write is in flight.
      for (const tag of ['n0', 'n1', 'n2']) b.record(event(ids, tag, 1));
      await b.flush();
      expect(b.stats()).toEqual({ buffered: 10, inFlight: 0, flushed: 1, flushErrors: 1, dropped: 3, flushes: 1 });
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(StoreUnavailableError);
      // After a failure, reaching flushAt no longer starts writes from record().
      b.record(event(ids, 'n3', 1)); // full: the last detail event, d3, goes
      expect(b.stats()).toMatchObject({ buffered: 10, dropped: 4 });
      expect(env.sink.writes).toEqual([1, 10]);

      // An explicit flush during the outage fails again and still loses nothing more.
      await b.flush();
      expect(b.stats()).toMatchObject({ buffered: 10, flushErrors: 2, dropped: 4 });
    } finally {
      await restore();
    }
    expect(await storedTags(env.knex, ids.org)).toEqual(['warm']);

    await b.flush();
    expect(b.stats()).toEqual({ buffered: 0, inFlight: 0, flushed: 11, flushErrors: 2, dropped: 4, flushes: 2 });
    // In recording order, each once; the oldest detail events were the ones dropped.
    expect(await storedTags(env.knex, ids.org)).toEqual(['warm', 'c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'n0', 'n1', 'n2', 'n3']);
    expect(await monthlyRequests(env.knex, ids.org)).toBe(11);
    await b.flush();
    expect(await storedTags(env.knex, ids.org)).toHaveLength(11);

    // Writes from record() resume once a write has succeeded.
    for (let i = 0; i < 10; i++) b.record(event(ids, `r${i}`, 0));
    expect(b.stats().inFlight).toBe(10);
    await b.flush();
    expect(await storedTags(env.knex, ids.org)).toHaveLength(21);
  });
});
