/**
 * The usage batcher over a real usage store (SQLite, and PostgreSQL for a real
 * outage): events summed per (organization, key, endpoint, method, hour) and written as
 * one batch of cells per flush, with no row per request; raw rows only for detail
 * records and only when asked; flush on demand and at `flushAt`, shared concurrent
 * flushes; usage kept across a failed write and then written exactly once; the bounded
 * buffer folding into `(other)`.
 */
import type { EntityManager, Knex } from '@mikro-orm/knex';
import { Client } from 'pg';
import { openOrm, migrate, type Orm } from '../src/store/orm';
import { createUsageStore, type UsageStore } from '../src/usage/store';
import { createUsageTables } from '../src/store/usage-tables';
import { UsageBatcher } from '../src/usage/batcher';
import { ManualScheduler } from '../src/util/scheduler';
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
  const store = createUsageStore(createUsageTables(orm, dialect));
  const writes: number[] = [];
  return {
    db,
    orm,
    store,
    knex: (orm.em as unknown as EntityManager).getKnex(),
    sink: {
      writes,
      write(batch, id) {
        writes.push(batch.cells.length + batch.events.length);
        return store.write(batch, id);
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

/** An organization's usage_daily rows: endpoint, period and requests, in key order. */
async function dailyRows(knex: Knex, org: string): Promise<{ endpoint: string; period: string; requests: number }[]> {
  const rows: { endpoint: string; period: string; requests: number | string }[] = await knex('usage_daily')
    .where('organization_id', org)
    .orderBy(['period', 'endpoint'])
    .select('endpoint', 'period', 'requests');
  return rows.map((r) => ({ endpoint: r.endpoint, period: r.period, requests: Number(r.requests) }));
}

async function monthlyRequests(knex: Knex, org: string): Promise<number> {
  const rows: { requests: number | string }[] = await knex('usage_monthly').where('organization_id', org).select('requests');
  return rows.reduce((s, r) => s + Number(r.requests), 0);
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

  const zero = { flushErrors: 0, dropped: 0, rawDropped: 0, securityDropped: 0 };

  it('sums events per (organization, key, endpoint, method, hour): one write of cells, no raw row per request', async () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 10_000, flushAt: 10_000 });
    for (let i = 0; i < 250; i++) {
      // Two endpoints, three hours of two days.
      const at = T0 + [0, 3_600_000, 86_400_000][i % 3]!;
      b.record({ ...event(ids, `e${i}`, (i % 2) as 0 | 1), at, endpoint: i % 5 === 0 ? '/v1/embed' : '/v1/chat' });
    }
    expect(env.sink.writes).toEqual([]);
    expect(b.stats()).toEqual({ buffered: 6, inFlight: 0, flushed: 0, flushes: 0, ...zero });
    await b.flush();
    expect(env.sink.writes).toEqual([6]);
    expect(b.stats()).toEqual({ buffered: 0, inFlight: 0, flushed: 250, flushes: 1, ...zero });
    expect(await storedTags(env.knex, ids.org)).toEqual([]);
    expect(await monthlyRequests(env.knex, ids.org)).toBe(125);
    const days = await dailyRows(env.knex, ids.org);
    expect(days.map((d) => [d.period, d.endpoint])).toEqual([
      ['2026-05-20', '/v1/chat'],
      ['2026-05-20', '/v1/embed'],
      ['2026-05-21', '/v1/chat'],
      ['2026-05-21', '/v1/embed'],
    ]);
    expect(days.reduce((s, d) => s + d.requests, 0)).toBe(125);
    // Nothing held: no write.
    await b.flush();
    expect(env.sink.writes).toEqual([6]);
  });

  it('with rawEvents, keeps a raw row for each detail record (never for a Check), in order', async () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 10_000, flushAt: 10_000, rawEvents: true });
    for (let i = 0; i < 10; i++) b.record(event(ids, `e${i}`, (i % 2) as 0 | 1));
    expect(b.stats().buffered).toBe(1 + 5);
    await b.flush();
    expect(await storedTags(env.knex, ids.org)).toEqual(['e0', 'e2', 'e4', 'e6', 'e8']);
    expect(await monthlyRequests(env.knex, ids.org)).toBe(5);
  });

  it('concurrent flushes share one write; a flush during a write also covers what was summed meanwhile', async () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 1000, flushAt: 1000 });
    for (let i = 0; i < 5; i++) b.record(event(ids, `a${i}`, 1));
    const f1 = b.flush();
    const f2 = b.flush();
    expect(b.stats()).toMatchObject({ buffered: 0, inFlight: 1 });
    await Promise.all([f1, f2]);
    expect(env.sink.writes).toEqual([1]);

    for (let i = 0; i < 3; i++) b.record(event(ids, `b${i}`, 1));
    const g1 = b.flush();
    b.record({ ...event(ids, 'late', 1), endpoint: '/late' });
    const g2 = b.flush();
    const g3 = b.flush();
    expect(g3).toBe(g2);
    await Promise.all([g1, g2, g3]);
    expect(env.sink.writes).toEqual([1, 1, 1]);
    expect(await monthlyRequests(env.knex, ids.org)).toBe(9);
  });

  it('reaching flushAt cells starts a flush from record() without waiting for it', async () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 1000, flushAt: 4 });
    const on = (i: number) => ({ ...event(ids, `e${i}`, 1), endpoint: `/v1/e${i}` });
    for (let i = 0; i < 3; i++) b.record(on(i));
    // More events in the same cells do not add to what is held.
    for (let i = 0; i < 3; i++) b.record(on(i));
    expect(env.sink.writes).toEqual([]);
    b.record(on(3));
    // The write started synchronously; record() returned at once.
    expect(env.sink.writes).toEqual([4]);
    expect(b.stats()).toMatchObject({ buffered: 0, inFlight: 4 });
    // While it runs, more cells are held (even past flushAt) without a second write...
    for (let i = 4; i < 9; i++) b.record(on(i));
    expect(env.sink.writes).toEqual([4]);
    // ...and once it is done, what was held is flushed in turn.
    await b.flush();
    expect(env.sink.writes).toEqual([4, 5]);
    expect(await monthlyRequests(env.knex, ids.org)).toBe(12);
  });

  it('a full buffer sums new cells under (other) when that cell is held, else drops them, and keeps no raw record', async () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 3, flushAt: 100, rawEvents: true });
    const on = (endpoint: string, requests: 0 | 1 = 1) => ({ ...event(ids, endpoint, requests), endpoint });
    b.record(on('/a'));
    b.record(on('(other)'));
    b.record(on('/b', 0)); // a cell and a raw record: full
    expect(b.stats()).toMatchObject({ buffered: 4, dropped: 0 });
    b.record(on('/a')); // its cell is held
    b.record(on('/c')); // new: summed under (other)
    b.record(on('/d', 0)); // new: under (other); its raw record is not kept
    b.record({ ...on('/e'), method: 'GET' }); // no (other) cell for GET: dropped
    expect(b.stats()).toMatchObject({ buffered: 4, dropped: 1, rawDropped: 1 });
    await b.flush();
    expect(await storedTags(env.knex, ids.org)).toEqual(['/b']);
    const rows = await env.knex('usage_monthly').where('organization_id', ids.org).orderBy('endpoint').select('endpoint', 'requests');
    expect(rows.map((r: { endpoint: string; requests: number }) => [r.endpoint, Number(r.requests)])).toEqual([
      ['(other)', 2],
      ['/a', 2],
      ['/b', 0],
    ]);
    expect(b.stats()).toMatchObject({ flushed: 6, dropped: 1 });
  });

  it('a full buffer drops new security events (counted), and sums those it holds', () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 2, flushAt: 100 });
    const cell = (subject: string) => ({
      kind: 'key.rate_limited' as const,
      organizationId: ids.org,
      subject,
      windowStart: T0,
      outcome: 'denied' as const,
      reason: 'rate_limit_exceeded',
      count: 1,
      firstSeen: T0,
      lastSeen: T0,
      client: '',
    });
    b.record(event(ids, 'a', 1));
    b.recordSecurity(cell('key_a'));
    b.recordSecurity(cell('key_a')); // held: summed
    b.recordSecurity(cell('key_b')); // full: dropped
    expect(b.stats()).toMatchObject({ buffered: 2, securityDropped: 1 });
  });

  it('start() schedules the flush; stop() ends it', () => {
    const b = new UsageBatcher(env.sink, { maxBuffered: 1000, flushAt: 1000 });
    const held = new ManualScheduler();
    b.start(60_000, held);
    expect(held.names()).toEqual(['usage-flush']);
    b.stop();
    expect(held.names()).toEqual([]);
  });

  it('the interval flush writes what was summed', async () => {
    const ids = newOrg();
    const b = new UsageBatcher(env.sink, { maxBuffered: 1000, flushAt: 1000 });
    const held = new ManualScheduler();
    b.start(5000, held);
    b.record(event(ids, 'tick', 1));
    expect(env.sink.writes).toEqual([]);
    expect(held.run('usage-flush')).toBe(1);
    await b.flush();
    expect(env.sink.writes).toEqual([1]);
    b.stop();
    expect(await monthlyRequests(env.knex, ids.org)).toBe(1);
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

  it('a failed write is summed back and retried with what came since; a later flush writes it exactly once', async () => {
    const ids = newOrg();
    const errors: unknown[] = [];
    const b = new UsageBatcher(env.sink, { maxBuffered: 100, flushAt: 100, rawEvents: true, onError: (e) => errors.push(e) });
    // Warm the pool, so the outage also breaks an open connection.
    b.record(event(ids, 'warm', 1));
    await b.flush();
    expect(b.stats()).toMatchObject({ flushed: 1, flushErrors: 0 });

    for (let i = 0; i < 6; i++) b.record(event(ids, `x${i}`, (i % 2) as 0 | 1));
    await cutOff();
    try {
      await b.flush();
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(StoreUnavailableError);
      expect(b.stats()).toMatchObject({ buffered: 1 + 3, inFlight: 0, flushed: 1, flushErrors: 1, dropped: 0 });
      for (let i = 0; i < 4; i++) b.record(event(ids, `y${i}`, (i % 2) as 0 | 1));
      // An explicit flush during the outage fails again and loses nothing.
      await b.flush();
      expect(b.stats()).toMatchObject({ buffered: 1 + 5, flushErrors: 2, dropped: 0 });
    } finally {
      await restore();
    }
    expect(await monthlyRequests(env.knex, ids.org)).toBe(1);

    await b.flush();
    expect(b.stats()).toMatchObject({ buffered: 0, inFlight: 0, flushed: 11, flushErrors: 2, dropped: 0, flushes: 2 });
    expect(await monthlyRequests(env.knex, ids.org)).toBe(1 + 3 + 2);
    // Raw detail records in recording order, each once.
    expect(await storedTags(env.knex, ids.org)).toEqual(['x0', 'x2', 'x4', 'y0', 'y2']);
    await b.flush();
    expect(await monthlyRequests(env.knex, ids.org)).toBe(6);
  });
});
