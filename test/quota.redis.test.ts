/**
 * The Redis quota counter against the real Redis (test/support/redis.ts: skipped when
 * Redis is down, a failure with KEYWARD_REQUIRE_REDIS=1). Failures are real: a closed
 * port, and a TCP proxy to the real Redis that is stopped and started again.
 * Time only through nowMs; no sleeps (waiting for a reconnection is an event).
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { billingPeriod } from '../src/limits/billing';
import { createQuotaCounter } from '../src/limits/quota';
import { QUOTA_KEY_GRACE_MS, quotaKey, RedisQuotaCounter } from '../src/limits/quota-redis';
import { SqlQuotaStore } from '../src/store/quota-counters';
import { LimiterUnavailableError, type QuotaOrg } from '../src/limits/types';
import { migrate, openOrm, type Orm } from '../src/store/orm';
import { createTestDatabase, type TestDatabase } from './support/databases';
import { describeRedis, testRedisUrl } from './support/redis';
import { closedPort } from './support/ports';

/** 2030-03-10 12:00 UTC (in the future, so the keys' expiry is too): anchor 1 → [Mar 1, Apr 1). */
const T = Date.UTC(2030, 2, 10, 12);
const MAR = Date.UTC(2030, 2, 1);
const APR = Date.UTC(2030, 3, 1);

const org = (monthlyQuota: number, billingAnchorDay = 1): QuotaOrg => ({
  id: `org_rq${randomBytes(8).toString('hex')}`,
  monthlyQuota,
  billingAnchorDay,
});

/** Resolves at the client's next 'ready' (its connection errors meanwhile are expected). */
function readyAgain(c: RedisQuotaCounter): Promise<void> {
  return new Promise((resolve) => c.redis.once('ready', () => resolve()));
}

/** A TCP proxy to the real Redis that can be stopped (connections cut, port closed) and started again. */
class RedisProxy {
  private server: Server | undefined;
  private sockets = new Set<Socket>();
  port = 0;
  constructor(private readonly target: URL) {}
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = tcpConnect(Number(this.target.port || 6379), this.target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = once(server, 'close');
    server.close();
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

describeRedis('RedisQuotaCounter', () => {
  let admin: Redis;
  const counters: RedisQuotaCounter[] = [];
  const orgs: QuotaOrg[] = [];

  beforeAll(() => {
    admin = new Redis(testRedisUrl());
  });
  afterAll(async () => {
    await admin.quit();
  });
  afterEach(async () => {
    for (const c of counters.splice(0)) await c.close();
    for (const o of orgs.splice(0)) {
      const keys = await admin.keys(`kw:quota:{${o.id}}:*`);
      if (keys.length) await admin.del(...keys);
    }
  });

  function counter(opts: Partial<ConstructorParameters<typeof RedisQuotaCounter>[0]> = {}): RedisQuotaCounter {
    const c = new RedisQuotaCounter({ redis: testRedisUrl(), onFailure: 'local', syncIntervalMs: 5000, ...opts });
    counters.push(c);
    return c;
  }
  /**
   * A counter for the exactness tests: connected before it is used, with timeouts
   * long enough that a loaded machine never turns a slow reply into a local fallback
   * (the fallback has tests of its own below).
   */
  async function steady(): Promise<RedisQuotaCounter> {
    const c = counter({ commandTimeoutMs: 5000, connectTimeoutMs: 5000 });
    await c.ready();
    return c;
  }
  function newOrg(limit: number, anchor = 1): QuotaOrg {
    const o = org(limit, anchor);
    orgs.push(o);
    return o;
  }

  it('is exact across two counters: limit 5 → 3 + 2 allowed, then denied on both', async () => {
    const a = await steady();
    const b = await steady();
    const o = newOrg(5);
    const period = billingPeriod(1, T);
    for (let i = 1; i <= 3; i++) expect(await a.consume(o, T)).toEqual({ allowed: true, limit: 5, used: i, period });
    for (let i = 4; i <= 5; i++) expect(await b.consume(o, T)).toEqual({ allowed: true, limit: 5, used: i, period });
    expect(await a.consume(o, T)).toEqual({ allowed: false, limit: 5, used: 5, period });
    expect(await b.consume(o, T)).toEqual({ allowed: false, limit: 5, used: 5, period });
    expect(await a.used(o, T)).toEqual({ used: 5, period });
    expect(await b.used(o, T)).toEqual({ used: 5, period });
    expect(await admin.get(quotaKey(o.id, MAR))).toBe('5');
    expect(a.stats()).toMatchObject({ backend: 'redis', allowed: 3, denied: 1, redisErrors: 0, fallbackDecisions: 0 });
  });

  it('is exact under concurrency: 20 parallel consumes on two counters allow exactly the limit', async () => {
    const a = await steady();
    const b = await steady();
    const o = newOrg(7);
    const ds = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).consume(o, T)));
    expect(ds.filter((d) => d.allowed)).toHaveLength(7);
    expect(
      ds
        .filter((d) => d.allowed)
        .map((d) => d.used)
        .sort((x, y) => x - y),
    ).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('rolls over at the period end; keys are per period and expire 35 days after it', async () => {
    const c = await steady();
    const o = newOrg(2);
    await c.consume(o, T);
    await c.consume(o, T);
    expect((await c.consume(o, APR - 1)).allowed).toBe(false);
    expect(await c.consume(o, APR)).toEqual({ allowed: true, limit: 2, used: 1, period: billingPeriod(1, APR) });
    expect(await admin.get(quotaKey(o.id, MAR))).toBe('2');
    expect(await admin.get(quotaKey(o.id, APR))).toBe('1');
    expect(await admin.call('PEXPIRETIME', quotaKey(o.id, MAR))).toBe(APR + QUOTA_KEY_GRACE_MS);
    expect(await admin.call('PEXPIRETIME', quotaKey(o.id, APR))).toBe(Date.UTC(2030, 4, 1) + QUOTA_KEY_GRACE_MS);
    expect(await c.used(o, T)).toMatchObject({ used: 2 });
    expect(await c.used(o, APR)).toMatchObject({ used: 1 });
    // Anchor 15: Mar 10 is in [Feb 15, Mar 15).
    const o15 = newOrg(1, 15);
    expect((await c.consume(o15, T)).period.start.toISOString()).toBe('2030-02-15T00:00:00.000Z');
    expect(await admin.get(quotaKey(o15.id, Date.UTC(2030, 1, 15)))).toBe('1');
  });

  describe('with Redis unreachable (a closed port)', () => {
    it("'local' keeps counting locally: the limit still holds on this replica", async () => {
      const errors: unknown[] = [];
      const c = counter({ redis: `redis://127.0.0.1:${await closedPort()}`, onError: (e) => errors.push(e) });
      await c.ready();
      const o = newOrg(3);
      const period = billingPeriod(1, T);
      for (let i = 1; i <= 3; i++) expect(await c.consume(o, T)).toEqual({ allowed: true, limit: 3, used: i, period });
      expect(await c.consume(o, T)).toEqual({ allowed: false, limit: 3, used: 3, period });
      expect(await c.used(o, T)).toEqual({ used: 3, period });
      expect(c.stats()).toMatchObject({ redisErrors: 5, fallbackDecisions: 4, allowed: 3, denied: 1 });
      // onError once per outage, not per request.
      expect(errors).toHaveLength(1);
      // A flush cannot add the outage counts to Redis: it fails and keeps them.
      await expect(c.flush()).rejects.toThrow();
      expect(await c.used(o, T)).toMatchObject({ used: 3 });
    });

    it("'deny' throws LimiterUnavailableError from consume and used", async () => {
      const c = counter({ redis: `redis://127.0.0.1:${await closedPort()}`, onFailure: 'deny' });
      await c.ready();
      const o = newOrg(3);
      await expect(c.consume(o, T)).rejects.toBeInstanceOf(LimiterUnavailableError);
      await expect(c.used(o, T)).rejects.toBeInstanceOf(LimiterUnavailableError);
      expect(c.stats()).toMatchObject({ redisErrors: 2, fallbackDecisions: 0, allowed: 0 });
    });
  });

  describe('with a database (sqlite)', () => {
    let db: TestDatabase;
    let orm: Orm;
    let table: SqlQuotaStore;
    beforeEach(async () => {
      db = await createTestDatabase('sqlite');
      orm = await openOrm(db.config);
      await migrate(orm);
      table = new SqlQuotaStore(orm, 'sqlite');
    });
    afterEach(async () => {
      for (const c of counters.splice(0)) await c.close();
      await orm.close(true);
      await db.dispose();
    });

    it('flush persists the Redis counts as max(stored, Redis); used() survives a Redis data loss', async () => {
      const a = counter({ store: new SqlQuotaStore(orm, 'sqlite') });
      const b = counter({ store: new SqlQuotaStore(orm, 'sqlite') });
      const o = newOrg(10);
      for (let i = 0; i < 3; i++) await a.consume(o, T);
      await b.consume(o, T);
      expect(await table.count(o.id, MAR)).toBe(0);
      await a.flush();
      expect(await table.count(o.id, MAR)).toBe(4); // the Redis count, b's request included
      await a.flush(); // nothing consumed since: nothing written
      await b.flush();
      expect(await table.count(o.id, MAR)).toBe(4);
      // Redis loses the key: reporting keeps the stored count; enforcement restarts in Redis.
      await admin.del(quotaKey(o.id, MAR));
      expect(await a.used(o, T)).toMatchObject({ used: 4 });
      expect(await a.consume(o, T)).toMatchObject({ allowed: true, used: 1 });
      await a.flush();
      expect(await table.count(o.id, MAR)).toBe(4); // max: never lowered
    });

    it("'local' with a database: replicas share their outage counts through it, and a later flush persists them", async () => {
      const port = await closedPort();
      const a = counter({ redis: `redis://127.0.0.1:${port}`, store: new SqlQuotaStore(orm, 'sqlite') });
      const b = counter({ redis: `redis://127.0.0.1:${port}`, store: new SqlQuotaStore(orm, 'sqlite') });
      await Promise.all([a.ready(), b.ready()]);
      const o = newOrg(5);
      for (let i = 0; i < 3; i++) expect((await a.consume(o, T)).allowed).toBe(true);
      // The Redis part of the flush fails; the database fallback's sync still runs.
      await expect(a.flush()).rejects.toThrow();
      expect(await table.count(o.id, MAR)).toBe(3);
      expect(await b.consume(o, T)).toMatchObject({ allowed: true, used: 4 });
      expect(await b.consume(o, T)).toMatchObject({ allowed: true, used: 5 });
      expect(await b.consume(o, T)).toMatchObject({ allowed: false, used: 5 });
      await expect(b.flush()).rejects.toThrow();
      expect(await table.count(o.id, MAR)).toBe(5);
      expect(await b.used(o, T)).toMatchObject({ used: 5 });
    });
  });

  describe('through a proxy that goes down and comes back', () => {
    let proxy: RedisProxy;
    beforeEach(async () => {
      proxy = new RedisProxy(new URL(testRedisUrl()));
      await proxy.start();
    });
    afterEach(async () => {
      for (const c of counters.splice(0)) await c.close();
      await proxy.stop();
    });

    it("outage counts ('local') go back into Redis once it answers again, by the next consume", async () => {
      const c = counter({ redis: proxy.url });
      const peer = counter(); // direct: never down
      await c.ready();
      const o = newOrg(6);
      expect(await c.consume(o, T)).toMatchObject({ allowed: true, used: 1 });
      expect(await peer.consume(o, T)).toMatchObject({ allowed: true, used: 2 });
      await proxy.stop();
      // Locally: the last Redis count (1) plus what is allowed here.
      expect(await c.consume(o, T)).toMatchObject({ allowed: true, used: 2 });
      expect(await c.consume(o, T)).toMatchObject({ allowed: true, used: 3 });
      expect(c.stats().fallbackDecisions).toBe(2);
      expect(await admin.get(quotaKey(o.id, MAR))).toBe('2');
      const ready = readyAgain(c);
      await proxy.start();
      await ready;
      // The 2 outage counts are added first, atomically with this consume: 2 + 2 + 1.
      expect(await c.consume(o, T)).toMatchObject({ allowed: true, used: 5 });
      expect(await admin.get(quotaKey(o.id, MAR))).toBe('5');
      expect(await peer.consume(o, T)).toMatchObject({ allowed: true, used: 6 });
      expect(await c.consume(o, T)).toMatchObject({ allowed: false, used: 6 });
    });

    it('or by the next flush, when the period is not consumed again', async () => {
      const c = counter({ redis: proxy.url });
      await c.ready();
      const o = newOrg(6);
      await proxy.stop();
      await c.consume(o, T);
      await c.consume(o, T);
      await expect(c.flush()).rejects.toThrow();
      const ready = readyAgain(c);
      await proxy.start();
      await ready;
      await c.flush();
      await c.flush();
      expect(await admin.get(quotaKey(o.id, MAR))).toBe('2');
      expect(await admin.call('PEXPIRETIME', quotaKey(o.id, MAR))).toBe(APR + QUOTA_KEY_GRACE_MS);
    });
  });

  it('createQuotaCounter with a Redis URL is the Redis backend', async () => {
    const db = await createTestDatabase('sqlite');
    const orm = await openOrm(db.config);
    try {
      const q = createQuotaCounter({ store: new SqlQuotaStore(orm, 'sqlite'), redisUrl: testRedisUrl(), syncIntervalMs: 1000 });
      expect(q.backend).toBe('redis');
      expect(q).toBeInstanceOf(RedisQuotaCounter);
      const o = newOrg(1);
      expect(await q.consume(o, T)).toMatchObject({ allowed: true, used: 1 });
      expect(await q.consume(o, T)).toMatchObject({ allowed: false, used: 1 });
      await q.close();
    } finally {
      await orm.close(true);
      await db.dispose();
    }
  });
});
