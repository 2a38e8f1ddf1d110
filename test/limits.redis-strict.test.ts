/**
 * The strict limiter in Redis (KEYWARD_RATE_LIMIT_MODE=strict) against a real Redis: the
 * same edges and decisions as the memory one, one shared limit across replicas, one hash
 * per key, and the strict local fallback when Redis is down.
 */
import fc from 'fast-check';
import Redis from 'ioredis';
import { RedisRateLimiter, type RedisRateLimiterOptions } from '../src/limits/redis-limiter';
import { strictKey } from '../src/limits/redis-strict-script';
import { StrictRateLimiter, SUB_WINDOW_MS } from '../src/limits/strict-window';
import { LimiterUnavailableError } from '../src/limits/types';
import { describeRedis, T0, testRedisUrl, uniqueKeyId, W } from './support/redis';
import { strictLimiterEdgeCases } from './support/strict-limiter';
import { closedPort } from './support/ports';

function strictLimiter(opts: Partial<RedisRateLimiterOptions> = {}): RedisRateLimiter {
  return new RedisRateLimiter({ url: testRedisUrl(), onFailure: 'deny', mode: 'strict', commandTimeoutMs: 5000, ...opts });
}

function clockAt(t: number) {
  const c = { t, now: () => new Date(c.t) };
  return c;
}

describe('StrictRateLimiter (memory) edges', () => {
  strictLimiterEdgeCases(
    () => ({ limiter: new StrictRateLimiter(), setNow: () => undefined }),
    (c) => c.limiter.close(),
  );
});

describeRedis('RedisRateLimiter in strict mode', () => {
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

  describe('edges (deny mode, so any Redis failure fails the test)', () => {
    strictLimiterEdgeCases(
      () => {
        const clock = clockAt(T0);
        return { limiter: strictLimiter({ clock }), setNow: (ms) => void (clock.t = ms) };
      },
      (c) => c.limiter.close(),
    );
  });

  it('keeps one hash per key, with only the live sub-windows, expiring 65 s after its last count', async () => {
    const l = track(strictLimiter());
    const key = uniqueKeyId();
    for (let i = 0; i < 20; i++) await l.consume(key, 100, T0 + i * SUB_WINDOW_MS);
    const fields = await admin.hgetall(strictKey(key));
    // `h` and the 13 sub-windows that can still overlap the last 60 s.
    expect(Object.keys(fields)).toHaveLength(14);
    expect(fields.h).toBe(String((T0 + 19 * SUB_WINDOW_MS) / SUB_WINDOW_MS));
    const ttl = await admin.pttl(strictKey(key));
    expect(ttl).toBeGreaterThan(60_000);
    expect(ttl).toBeLessThanOrEqual(65_000);
    await l.reset(key);
    expect(await admin.exists(strictKey(key))).toBe(0);
  });

  it('concurrent consumes from two replicas never exceed the limit, at a minute edge either', async () => {
    const a = track(strictLimiter());
    const b = track(strictLimiter());
    const key = uniqueKeyId();
    const first = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).consume(key, 7, T0 + W - 1)));
    expect(first.filter((d) => d.allowed)).toHaveLength(7);
    const second = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).consume(key, 7, T0 + W + i * 1000)));
    expect(second.filter((d) => d.allowed)).toHaveLength(0);
  });

  it('a consume is one round trip (one EVALSHA), as are refund and peek', async () => {
    const l = track(strictLimiter());
    const key = uniqueKeyId();
    await l.consume(key, 5, T0);
    const sent: string[] = [];
    const original = l.client.sendCommand.bind(l.client);
    l.client.sendCommand = (cmd: { name: string }) => (sent.push(cmd.name), original(cmd as never));
    await l.consume(key, 5, T0 + 1);
    await l.peek(key, 5, T0 + 2);
    await l.refund(key, T0 + 3);
    expect(sent).toEqual(['evalsha', 'evalsha', 'evalsha']);
  });

  it('decides exactly as the memory strict limiter over random sequences (keys, bursts, clock steps)', async () => {
    const l = track(strictLimiter());
    await fc.assert(
      fc.asyncProperty(
        // Steps back of up to 5 s: the memory limiter may drop a key idle for 14 sub-windows of another key's clock.
        fc.integer({ min: 1, max: 6 }),
        fc.array(
          fc.record({
            key: fc.integer({ min: 0, max: 2 }),
            dt: fc.oneof(
              fc.integer({ min: 0, max: 3000 }),
              fc.integer({ min: 55_000, max: 70_000 }),
              fc.integer({ min: -SUB_WINDOW_MS, max: -1 }),
            ),
            op: fc.constantFrom('consume', 'consume', 'consume', 'peek', 'refund'),
          }),
          { maxLength: 40 },
        ),
        async (limit, steps) => {
          const memory = new StrictRateLimiter();
          const keys = [uniqueKeyId(), uniqueKeyId(), uniqueKeyId()];
          let now = T0 + 30_000;
          let latest = now;
          for (const s of steps) {
            // Back by at most 5 s from the latest time seen, however many steps back in a row.
            now = Math.max(now + s.dt, latest - SUB_WINDOW_MS);
            latest = Math.max(latest, now);
            const key = keys[s.key]!;
            if (s.op === 'refund') {
              memory.refund(key);
              await l.refund(key, now);
            } else if (s.op === 'peek') {
              expect(await l.peek(key, limit, now)).toEqual(await memory.peek(key, limit, now));
            } else {
              expect(await l.consume(key, limit, now)).toEqual(memory.consume(key, limit, now));
            }
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it("with Redis down, 'local' decides with the strict limiter in memory; 'deny' throws", async () => {
    const url = `redis://127.0.0.1:${await closedPort()}`;
    const local = track(strictLimiter({ url, onFailure: 'local', commandTimeoutMs: 100, onError: () => undefined }));
    const key = uniqueKeyId();
    for (let i = 0; i < 3; i++) expect((await local.consume(key, 3, T0 + W - 1)).allowed).toBe(true);
    expect(await local.consume(key, 3, T0 + W + 1)).toEqual({ allowed: false, limit: 3, remaining: 0, resetSeconds: 60 });
    expect(local.stats().fallbackDecisions).toBe(4);
    const deny = track(strictLimiter({ url, onFailure: 'deny', commandTimeoutMs: 100, onError: () => undefined }));
    await expect(deny.consume(key, 3, T0)).rejects.toBeInstanceOf(LimiterUnavailableError);
    await expect(deny.refund(key, T0)).resolves.toBeUndefined();
  });
});
