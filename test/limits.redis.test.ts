/**
 * The Redis limiter against a real Redis (test/support/redis.ts): the same window
 * edges as the memory limiter, one shared limit across replicas, one round trip per
 * consume, and what happens when Redis is down or drops the connection.
 */
import fc from 'fast-check';
import Redis from 'ioredis';
import { RedisRateLimiter, windowKey, type RedisRateLimiterOptions } from '../src/limits/redis-limiter';
import { MemoryRateLimiter } from '../src/limits/sliding-window';
import { LimiterUnavailableError } from '../src/limits/types';
import { describeRedis, limiterEdgeCases, redisAvailable, T0, testRedisUrl, uniqueKeyId, W } from './support/redis';
import { closedPort } from './support/ports';

/** Timeouts long enough that a loaded machine never turns a slow reply into a failure (failures have tests of their own). */
function limiter(opts: Partial<RedisRateLimiterOptions> = {}): RedisRateLimiter {
  return new RedisRateLimiter({ url: testRedisUrl(), onFailure: 'deny', commandTimeoutMs: 5000, ...opts });
}

function clockAt(t: number) {
  const c = { t, now: () => new Date(c.t) };
  return c;
}

/** Resolves with fn's value, or fails the test if it has not settled by the deadline. */
async function settles<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describeRedis('RedisRateLimiter', () => {
  let admin: Redis;
  const open: RedisRateLimiter[] = [];
  const track = (l: RedisRateLimiter) => (open.push(l), l);

  beforeAll(() => {
    admin = new Redis(testRedisUrl());
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((l) => l.close()));
  });
  afterAll(async () => {
    await admin.quit();
  });

  describe('window edges (deny mode, so any Redis failure fails the test)', () => {
    limiterEdgeCases(
      () => {
        const clock = clockAt(T0);
        return { limiter: limiter({ clock }), setNow: (ms) => void (clock.t = ms) };
      },
      (c) => c.limiter.close(),
    );
  });

  it('redisAvailable answers for the test Redis and for a closed port', async () => {
    expect(await redisAvailable()).toBe(true);
    expect(await redisAvailable(`redis://127.0.0.1:${await closedPort()}`)).toBe(false);
  });

  it('stores one counter per window under a hash-tagged key that expires after 2 windows', async () => {
    const l = track(limiter());
    const key = uniqueKeyId();
    await l.consume(key, 5, T0 + W + 10);
    await l.consume(key, 5, T0 + W + 20);
    expect(await admin.get(windowKey(key, T0 + W))).toBe('2');
    expect(windowKey(key, T0 + W)).toBe(`kw:rl:{${key}}:${T0 + W}`);
    const ttl = await admin.pttl(windowKey(key, T0 + W));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(2 * W);
    expect(await admin.exists(windowKey(key, T0))).toBe(0);
  });

  it('two replicas share one key limit exactly', async () => {
    const a = track(limiter());
    const b = track(limiter());
    const key = uniqueKeyId();
    const t = T0 + 1234;
    for (let i = 0; i < 3; i++) expect((await a.consume(key, 5, t)).allowed).toBe(true);
    expect(await b.consume(key, 5, t)).toMatchObject({ allowed: true, remaining: 1 });
    expect(await b.consume(key, 5, t)).toMatchObject({ allowed: true, remaining: 0 });
    expect((await a.consume(key, 5, t)).allowed).toBe(false);
    expect((await b.consume(key, 5, t)).allowed).toBe(false);
    // A refund through one is seen by the other.
    await a.refund(key, t);
    expect((await b.consume(key, 5, t)).allowed).toBe(true);
    expect(a.stats()).toMatchObject({ allowed: 3, limited: 1, redisErrors: 0, fallbackDecisions: 0, trackedKeys: 0 });
  });

  it('concurrent consumes from two replicas never exceed the limit', async () => {
    const a = track(limiter());
    const b = track(limiter());
    const key = uniqueKeyId();
    const ds = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).consume(key, 17, T0 + 5)));
    expect(ds.filter((d) => d.allowed)).toHaveLength(17);
  });

  it('a consume is one round trip (one EVALSHA), as are refund and peek', async () => {
    const l = track(limiter());
    const key = uniqueKeyId();
    await l.consume(key, 100, T0); // connected, script loaded on this connection
    const sent: string[] = [];
    const client = l.client as unknown as { sendCommand(c: { name: string }, ...rest: unknown[]): unknown };
    const orig = client.sendCommand.bind(client);
    client.sendCommand = (c, ...rest) => {
      sent.push(c.name);
      return orig(c, ...rest);
    };
    for (let i = 0; i < 20; i++) await l.consume(key, 100, T0 + i);
    expect(sent).toEqual(Array(20).fill('evalsha'));
    sent.length = 0;
    await l.refund(key, T0 + 30);
    await l.peek(key, 100, T0 + 31);
    expect(sent).toEqual(['evalsha', 'evalsha']);
  });

  it('agrees with the memory limiter over random sequences', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.array(
          fc.record({
            dt: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3 * W }), fc.constantFrom(W - 1, W, 6000)),
            kind: fc.constantFrom('consume', 'consume', 'consume', 'peek', 'refund'),
          }),
          { maxLength: 40 },
        ),
        async (limit, ops) => {
          const r = track(limiter());
          const m = new MemoryRateLimiter();
          const key = uniqueKeyId();
          let now = T0 + 7;
          for (const op of ops) {
            now += op.dt;
            if (op.kind === 'consume') expect(await r.consume(key, limit, now)).toEqual(m.consume(key, limit, now));
            else if (op.kind === 'peek') expect(await r.peek(key, limit, now)).toEqual(await m.peek(key, limit, now));
            else {
              await r.refund(key, now);
              m.refund(key, now);
            }
          }
          await r.close();
        },
      ),
      { numRuns: 25 },
    );
  });

  describe('with Redis down (a closed port)', () => {
    it("'local' decides in memory, counting errors and fallbacks, and reports once", async () => {
      const errors: unknown[] = [];
      const l = track(
        new RedisRateLimiter({ url: `redis://127.0.0.1:${await closedPort()}`, onFailure: 'local', onError: (e) => errors.push(e) }),
      );
      let clientErrors = 0;
      l.client.on('error', () => clientErrors++);
      const key = uniqueKeyId();
      const ds = [];
      for (let i = 0; i < 4; i++) ds.push(await settles(l.consume(key, 3, T0 + i), 'consume'));
      expect(ds.map((d) => d.allowed)).toEqual([true, true, true, false]);
      expect(ds[3]).toEqual({ allowed: false, limit: 3, remaining: 0, resetSeconds: 80 });
      expect(await settles(l.peek(key, 3, T0 + 5), 'peek')).toMatchObject({ allowed: false, remaining: 0 });
      await settles(l.refund(key, T0 + 6), 'refund');
      expect((await l.consume(key, 3, T0 + 7)).allowed).toBe(true);
      expect(l.stats()).toEqual({ backend: 'redis', trackedKeys: 1, allowed: 4, limited: 1, redisErrors: 7, fallbackDecisions: 5 });
      await expect(settles(l.reset(key), 'reset')).rejects.toBeInstanceOf(LimiterUnavailableError);
      expect(l.stats().trackedKeys).toBe(0);
      // The client keeps failing to reconnect in the background; nothing escapes.
      await until('two more reconnect failures', () => clientErrors >= 2);
      expect(errors).toHaveLength(1);
    });

    it("'deny' throws LimiterUnavailableError at once; refund still resolves", async () => {
      const l = track(new RedisRateLimiter({ url: `redis://127.0.0.1:${await closedPort()}`, onFailure: 'deny' }));
      const key = uniqueKeyId();
      const err = await settles(
        Promise.resolve(l.consume(key, 3, T0)).catch((e: unknown) => e),
        'consume',
      );
      expect(err).toBeInstanceOf(LimiterUnavailableError);
      expect((err as Error).cause).toBeInstanceOf(Error);
      await expect(settles(l.peek(key, 3, T0), 'peek')).rejects.toBeInstanceOf(LimiterUnavailableError);
      await expect(settles(l.refund(key, T0), 'refund')).resolves.toBeUndefined();
      expect(l.stats()).toEqual({ backend: 'redis', trackedKeys: 0, allowed: 0, limited: 0, redisErrors: 3, fallbackDecisions: 0 });
    });
  });

  it('keeps working after its connection is killed (reconnects in the background)', async () => {
    const name = `kw-test-${uniqueKeyId()}`;
    const l = track(limiter({ connectionName: name, commandTimeoutMs: 100 }));
    const other = track(limiter());
    const key = uniqueKeyId();
    expect((await l.consume(key, 10, T0)).allowed).toBe(true);

    const idOf = async (): Promise<string | undefined> => {
      const list = (await admin.client('LIST')) as string;
      return list
        .split('\n')
        .find((line) => line.includes(` name=${name} `))
        ?.match(/^id=(\d+)/)?.[1];
    };
    const before = await idOf();
    expect(before).toBeDefined();
    await admin.client('KILL', 'ID', before!);

    // Poll until a consume is decided by Redis again (deny mode: failures throw).
    let served = 1;
    await until('a consume through Redis after the kill', async () => {
      try {
        await l.consume(key, 10, T0 + 1);
        served++;
        return true;
      } catch (e) {
        expect(e).toBeInstanceOf(LimiterUnavailableError);
        return false;
      }
    });
    const after = await idOf();
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    // The other replica sees both requests: they were counted in Redis.
    expect(await other.peek(key, 10, T0 + 2)).toMatchObject({ allowed: true, remaining: 10 - served });
  });
});
