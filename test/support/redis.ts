/**
 * The real Redis the Redis tests use: KEYWARD_TEST_REDIS_URL, default
 * redis://127.0.0.1:6379. Never mocked.
 *
 * describeRedis(name, fn) registers the suite only when Redis answers. Jest registers
 * tests synchronously, so availability is probed synchronously, once per test file,
 * by a short child process (ioredis PING, 1.5 s budget). Then:
 *  - Redis answers: the suite runs.
 *  - It does not, and KEYWARD_REQUIRE_REDIS is 1 or true: one test fails with
 *    'Redis is required (KEYWARD_REQUIRE_REDIS) but not reachable' (CI sets it to 1).
 *  - It does not, otherwise: the suite is registered with describe.skip, so its tests
 *    are reported as skipped (never as passed); a console.warn says why, and so does
 *    the last line of the run (test/support/skips.ts).
 * Any other KEYWARD_REQUIRE_REDIS value than 1, true, 0, false or empty fails the file.
 *
 * Also here: the edge cases every RateLimiter backend must pass (limiterEdgeCases),
 * run by limits.sliding-window.test.ts (memory) and limits.redis.test.ts (Redis).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import type { RateLimiter } from '../../src/limits/types';
import { recordSkip } from './skips';

export function testRedisUrl(): string {
  return process.env.KEYWARD_TEST_REDIS_URL || 'redis://127.0.0.1:6379';
}

export const REDIS_REQUIRED_MESSAGE = 'Redis is required (KEYWARD_REQUIRE_REDIS) but not reachable';

/** KEYWARD_REQUIRE_REDIS: 1 or true (any case) require Redis; unset, empty, 0 or false do not. */
export function redisRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = (env.KEYWARD_REQUIRE_REDIS ?? '').trim().toLowerCase();
  if (value === '1' || value === 'true') return true;
  if (value === '' || value === '0' || value === 'false') return false;
  throw new Error(`KEYWARD_REQUIRE_REDIS must be 1, true, 0 or false, not ${JSON.stringify(env.KEYWARD_REQUIRE_REDIS)}`);
}

/** The test Redis URL without its password, for messages. */
function redactedRedisUrl(): string {
  try {
    const url = new URL(testRedisUrl());
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(KEYWARD_TEST_REDIS_URL is not a URL)';
  }
}

/** Connects and PINGs with a short timeout. */
export async function redisAvailable(url = testRedisUrl(), timeoutMs = 1000): Promise<boolean> {
  const c = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return (await c.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    // After a failed connect the client has already ended: disconnect() would arm ioredis's
    // 2 s ref'd timer waiting for a 'close' that already happened.
    if (c.status !== 'end') c.disconnect();
  }
}

let probed: boolean | undefined;

/** redisAvailable, synchronously (a child process), cached per test file. */
export function redisAvailableSync(url = testRedisUrl()): boolean {
  if (probed !== undefined) return probed;
  const script = `
    const Redis = require(process.env.IOREDIS_PATH).default;
    const c = new Redis(process.env.PROBE_URL, { lazyConnect: true, connectTimeout: 1000, commandTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    c.on('error', () => undefined);
    c.connect().then(() => c.ping()).then((r) => process.exit(r === 'PONG' ? 0 : 1), () => process.exit(1));`;
  const r = spawnSync(process.execPath, ['-e', script], {
    env: { ...process.env, IOREDIS_PATH: require.resolve('ioredis'), PROBE_URL: url },
    timeout: 1500,
    stdio: 'ignore',
  });
  probed = r.status === 0;
  return probed;
}

export function describeRedis(name: string, fn: () => void): void {
  const required = redisRequired();
  if (redisAvailableSync()) {
    describe(name, fn);
    return;
  }
  if (required) {
    describe(name, () => {
      it('has a reachable Redis', () => {
        throw new Error(`${REDIS_REQUIRED_MESSAGE}: ${redactedRedisUrl()}`);
      });
    });
    return;
  }
  const reason = `Redis not reachable at ${redactedRedisUrl()}: set KEYWARD_TEST_REDIS_URL, or KEYWARD_REQUIRE_REDIS=1 to fail instead`;
  console.warn(`Skipping "${name}": ${reason}`);
  recordSkip(name, reason);
  describe.skip(name, fn);
}

/** A fresh key id, so tests sharing a Redis never see each other's counters. */
export function uniqueKeyId(): string {
  return `key_test${randomBytes(10).toString('hex')}`;
}

/** A window start (2026-01-01T00:00:00Z); tests count time from here. */
export const T0 = Date.UTC(2026, 0, 1);
export const W = 60_000;

export interface EdgeContext {
  limiter: RateLimiter;
  /** Sets the clock the limiter's reset uses. */
  setNow(ms: number): void;
}

/**
 * Registers the window-edge tests for one backend. `make` is called per test and
 * `dispose` after it. Times are only ever passed as nowMs.
 */
export function limiterEdgeCases(make: () => Promise<EdgeContext> | EdgeContext, dispose: (c: EdgeContext) => Promise<void>): void {
  let ctx: EdgeContext;
  let key: string;
  beforeEach(async () => {
    ctx = await make();
    key = uniqueKeyId();
  });
  afterEach(async () => {
    await dispose(ctx);
  });

  const consume = (k: string, limit: number, t: number) => Promise.resolve(ctx.limiter.consume(k, limit, t));
  const fill = async (k: string, limit: number, t: number, n: number) => {
    for (let i = 0; i < n; i++) {
      const d = await consume(k, limit, t);
      expect(d.allowed).toBe(true);
    }
  };

  it('allows 10 in a window, counts remaining down, and denies the 11th with the exact reset', async () => {
    for (let i = 0; i < 10; i++) {
      const d = await consume(key, 10, T0 + i);
      expect(d).toEqual({ allowed: true, limit: 10, remaining: 9 - i, resetSeconds: i < 9 ? 0 : 66 });
    }
    // At T0+10: prev'=10 only decays below 9 at 6 s into the next window: 60000-10+6000 ms.
    expect(await consume(key, 10, T0 + 10)).toEqual({ allowed: false, limit: 10, remaining: 0, resetSeconds: 66 });
  });

  it('at 59.999 s and 60.000 s: the full window still counts, with prev weighing 1.0 at the boundary', async () => {
    await fill(key, 10, T0, 10);
    expect(await consume(key, 10, T0 + W - 1)).toEqual({ allowed: false, limit: 10, remaining: 0, resetSeconds: 7 });
    expect(await consume(key, 10, T0 + W)).toEqual({ allowed: false, limit: 10, remaining: 0, resetSeconds: 6 });
  });

  it('at 6 s into the next window, prev weighs 0.9: exactly one more is allowed, not 1 ms earlier', async () => {
    await fill(key, 10, T0, 10);
    expect((await consume(key, 10, T0 + W + 5999)).allowed).toBe(false);
    expect(await consume(key, 10, T0 + W + 6000)).toEqual({ allowed: true, limit: 10, remaining: 0, resetSeconds: 6 });
    const d = await consume(key, 10, T0 + W + 6000);
    expect(d.allowed).toBe(false);
    expect(d.resetSeconds).toBe(6); // 10*(1 - e/60000) + 1 <= 9 at e = 12000
  });

  it('a previous window decays to nothing: at 119.999 s floor(remaining), at 120 s all of it', async () => {
    await fill(key, 10, T0, 10);
    // 10 * 1/60000 left of prev: the 11th fits, 8 remain (floor of 8.9998).
    expect(await consume(key, 10, T0 + 2 * W - 1)).toEqual({ allowed: true, limit: 10, remaining: 8, resetSeconds: 0 });
    ctx.setNow(T0 + 2 * W - 1);
    await ctx.limiter.reset(key);
    await fill(key, 10, T0 + W, 10);
    // Two windows after the 10 at T0 + W: nothing of them counts.
    expect(await consume(key, 10, T0 + 3 * W)).toEqual({ allowed: true, limit: 10, remaining: 9, resetSeconds: 0 });
  });

  it('resetSeconds is exact: allowed at now + reset*1000, not 1 s before', async () => {
    const cases: Array<[number, number, number]> = [
      // [limit, fills at offset, then probe from offset]
      [1, 0, 0],
      [1, 59_999, 59_999],
      [3, 12_345, 40_001],
      [7, 1, 59_000],
      [10, 30_500, 30_500],
      [10, 0, W + 3_217],
    ];
    for (const [limit, at, probeAt] of cases) {
      const k = uniqueKeyId();
      await fill(k, limit, T0 + at, limit);
      const now = T0 + probeAt;
      const denied = await ctx.limiter.peek(k, limit, now);
      expect(denied.allowed).toBe(false);
      expect(denied.resetSeconds).toBeGreaterThanOrEqual(1);
      const r = denied.resetSeconds;
      expect((await ctx.limiter.peek(k, limit, now + (r - 1) * 1000)).allowed).toBe(false);
      expect((await consume(k, limit, now + r * 1000)).allowed).toBe(true);
    }
  });

  it('refund gives back one request', async () => {
    await fill(key, 3, T0 + 100, 3);
    expect((await consume(key, 3, T0 + 200)).allowed).toBe(false);
    await ctx.limiter.refund(key, T0 + 300);
    expect(await consume(key, 3, T0 + 400)).toMatchObject({ allowed: true, remaining: 0 });
    expect((await consume(key, 3, T0 + 500)).allowed).toBe(false);
  });

  it('refund of a key with nothing in the current window does nothing', async () => {
    await fill(key, 3, T0, 3);
    await ctx.limiter.refund(key, T0 + W); // next window: curr is 0 there
    expect((await consume(key, 3, T0 + W)).allowed).toBe(false);
  });

  it('peek does not spend', async () => {
    expect(await ctx.limiter.peek(key, 5, T0)).toEqual({ allowed: true, limit: 5, remaining: 5, resetSeconds: 0 });
    await fill(key, 5, T0, 4);
    for (let i = 0; i < 5; i++) {
      expect(await ctx.limiter.peek(key, 5, T0 + 1)).toEqual({ allowed: true, limit: 5, remaining: 1, resetSeconds: 0 });
    }
    expect(await consume(key, 5, T0 + 2)).toMatchObject({ allowed: true, remaining: 0 });
    expect(await ctx.limiter.peek(key, 5, T0 + 3)).toMatchObject({ allowed: false, remaining: 0 });
  });

  it('reset forgets the key', async () => {
    await fill(key, 2, T0 + W - 10, 2); // the previous window
    ctx.setNow(T0 + W + 1000);
    expect((await consume(key, 2, T0 + W + 1000)).allowed).toBe(false);
    await ctx.limiter.reset(key);
    expect(await consume(key, 2, T0 + W + 1000)).toEqual({ allowed: true, limit: 2, remaining: 1, resetSeconds: 0 });
  });

  it('two keys are independent', async () => {
    const other = uniqueKeyId();
    await fill(key, 2, T0, 2);
    expect((await consume(key, 2, T0)).allowed).toBe(false);
    expect(await consume(other, 2, T0)).toMatchObject({ allowed: true, remaining: 1 });
    await ctx.limiter.refund(other, T0);
    expect((await consume(key, 2, T0)).allowed).toBe(false);
  });
}
