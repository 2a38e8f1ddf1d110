/**
 * The consumes of one event-loop turn share one Redis script call (src/redis/batch.ts):
 * one command per batch (at most maxBatch items), each item's own result in order, a
 * failed batch fails each of its items, the deadline armed when the batch is sent; and
 * the limiter and quota decide the items of one batch in order, exactly as one at a time.
 */
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { RedisBatcher } from '../src/redis/batch';
import { RedisConnection } from '../src/redis/client';
import { RedisRateLimiter } from '../src/limits/redis-limiter';
import { RedisQuotaCounter } from '../src/limits/quota-redis';
import { describeRedis, T0, testRedisUrl, uniqueKeyId } from './support/redis';
import { closedPort } from './support/ports';

function stall(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // busy
  }
}

describeRedis('RedisBatcher', () => {
  let admin: Redis;
  const prefix = `kw:test:batch:${randomBytes(6).toString('hex')}:`;
  beforeAll(async () => {
    admin = new Redis(testRedisUrl());
    for (let i = 0; i < 10; i++) await admin.set(`${prefix}${i}`, `v${i}`, 'EX', 60);
  });
  afterAll(() => admin.quit());

  it('sends the items of one turn as one command per maxBatch, and answers each its own result', async () => {
    const c = RedisConnection.open({ url: testRedisUrl(), connectionName: 'keyward-test-batch', commandTimeoutMs: 5000 });
    const sizes: number[] = [];
    const b = new RedisBatcher<string, string | null>(
      c,
      (client, keys) => {
        sizes.push(keys.length);
        return client.mget(keys);
      },
      4,
    );
    try {
      await c.ready();
      const got = await Promise.all([3, 1, 4, 1, 5, 9, 2, 6, 5, 3].map((i) => b.run(`${prefix}${i}`)));
      expect(got).toEqual(['v3', 'v1', 'v4', 'v1', 'v5', 'v9', 'v2', 'v6', 'v5', 'v3']);
      expect(sizes).toEqual([4, 4, 2]);
      expect(b.sent).toEqual({ batches: 3, items: 10 });
      // A later turn is a new batch.
      await expect(b.run(`${prefix}7`)).resolves.toBe('v7');
      expect(sizes).toEqual([4, 4, 2, 1]);
    } finally {
      await c.close();
    }
  });

  it('fails every item of a batch whose reply does not match it, or whose connection is down', async () => {
    const c = RedisConnection.open({ url: testRedisUrl(), connectionName: 'keyward-test-batch', commandTimeoutMs: 5000 });
    const short = new RedisBatcher<string, string | null>(c, async (client, keys) => (await client.mget(keys)).slice(1));
    const down = RedisConnection.open({ url: `redis://127.0.0.1:${await closedPort()}`, connectionName: 'x', connectTimeoutMs: 200 });
    down.client.on('error', () => undefined);
    const dead = new RedisBatcher<string, string | null>(down, (client, keys) => client.mget(keys));
    try {
      await c.ready();
      const r = await Promise.allSettled([short.run(`${prefix}1`), short.run(`${prefix}2`)]);
      expect(r.map((x) => x.status)).toEqual(['rejected', 'rejected']);
      expect(String((r[0] as PromiseRejectedResult).reason)).toContain('1 results for a batch of 2');
      const d = await Promise.allSettled([dead.run('a'), dead.run('b'), dead.run('c')]);
      expect(d.map((x) => x.status)).toEqual(['rejected', 'rejected', 'rejected']);
    } finally {
      await c.close();
      await down.close();
    }
  });

  it('arms the deadline when the batch is sent: a stall between run() and the send is not a timeout', async () => {
    const c = RedisConnection.open({ url: testRedisUrl(), connectionName: 'keyward-test-batch', commandTimeoutMs: 50 });
    const b = new RedisBatcher<string, string | null>(c, (client, keys) => client.mget(keys));
    try {
      await c.ready();
      await b.run(`${prefix}0`);
      for (let i = 0; i < 3; i++) {
        const p = b.run(`${prefix}${i}`);
        stall(200);
        await expect(p).resolves.toBe(`v${i}`);
      }
    } finally {
      await c.close();
    }
  });
});

describeRedis('one batch is decided in order, as one consume at a time', () => {
  it.each(['strict', 'approximate'] as const)(
    '%s limiter: of 25 concurrent consumes at limit 10, the first 10 are allowed',
    async (mode) => {
      const l = new RedisRateLimiter({ url: testRedisUrl(), onFailure: 'deny', mode, commandTimeoutMs: 5000 });
      try {
        const key = uniqueKeyId();
        const other = uniqueKeyId();
        const now = T0 + 30_000;
        const ds = await Promise.all(Array.from({ length: 25 }, (_, i) => l.consume(i % 5 === 4 ? other : key, 10, now)));
        const mine = ds.filter((_, i) => i % 5 !== 4);
        expect(mine.map((d) => d.allowed)).toEqual([...Array<boolean>(10).fill(true), ...Array<boolean>(10).fill(false)]);
        expect(mine.slice(0, 10).map((d) => d.remaining)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
        expect(ds.filter((_, i) => i % 5 === 4).map((d) => d.allowed)).toEqual([true, true, true, true, true]);
        expect(l.stats()).toMatchObject({ allowed: 15, limited: 10, redisErrors: 0, fallbackDecisions: 0 });
      } finally {
        await l.close();
      }
    },
  );

  it('quota: of 12 concurrent consumes at quota 5, the first 5 are allowed, each with its own count', async () => {
    const q = new RedisQuotaCounter({ redis: testRedisUrl(), onFailure: 'deny', syncIntervalMs: 60_000, commandTimeoutMs: 5000 });
    try {
      const org = { id: `org_rb${randomBytes(8).toString('hex')}`, monthlyQuota: 5, billingAnchorDay: 1 };
      const now = Date.UTC(2030, 2, 10, 12);
      const ds = await Promise.all(Array.from({ length: 12 }, () => q.consume(org, now)));
      expect(ds.map((d) => d.allowed)).toEqual([...Array<boolean>(5).fill(true), ...Array<boolean>(7).fill(false)]);
      expect(ds.map((d) => d.used)).toEqual([1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5, 5]);
      expect(q.stats()).toMatchObject({ allowed: 5, denied: 7, redisErrors: 0 });
    } finally {
      await q.close();
    }
  });
});
