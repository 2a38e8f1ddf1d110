/**
 * The rate limiter shared by every replica through Redis: the sliding-window counter
 * of sliding-window.ts, decided atomically by a Lua script.
 *
 * Contract:
 *  - Keys: `kw:rl:{<keyId>}:<windowStart>`, one counter per key and window; the hash
 *    tag keeps a key's windows in one cluster slot. A counter expires 2 windows after
 *    its last increment. Time is the caller's `nowMs`, never Redis TIME, so replicas
 *    and tests decide by the clock they are given.
 *  - consume is ONE round trip (EVALSHA; EVAL the first time on a connection): the
 *    script reads both windows, tests estimate + 1 <= limit, INCRs and PEXPIREs the
 *    current one if allowed, and returns {allowed, prev, curr}; remaining and
 *    resetSeconds are then computed here with the same functions as the memory limiter.
 *  - refund is one script: DECR the current window's counter if it is > 0.
 *  - Failures: the client fails fast (no offline queue, `commandTimeoutMs`, default
 *    100 ms, measured so that an event-loop stall cannot time out a command whose reply
 *    has arrived: ./deadline) and reconnects in the background (backoff 100 ms doubling to at most 2 s),
 *    so it returns to Redis by itself once Redis answers again. A connection that
 *    answers nothing for `socketTimeoutMs` (default 1000) while commands wait on it is
 *    dropped and reopened: a partition leaves the socket open but dead, and a timed-out
 *    command alone does not close it. A failed consume or peek counts in
 *    `redisErrors`; then `onFailure: 'local'` decides with an in-process
 *    MemoryRateLimiter (each replica then limits on its own: up to replicas x limit;
 *    consumes so decided count in `fallbackDecisions`), `'deny'` throws
 *    LimiterUnavailableError (the Check answers 503). A timed-out consume may still
 *    have been counted by Redis.
 *  - refund never throws: it is best effort (on failure the local fallback is refunded
 *    and the key loses at most one request until its window passes).
 *    reset throws LimiterUnavailableError in both modes when Redis fails (after
 *    resetting the fallback): it cannot be done locally.
 *  - Until the first connection attempt settles (at most `connectTimeoutMs`), calls
 *    wait for it rather than fail, so a replica starting up does not fall back.
 *  - The client's errors never escape: `onError` is called once per outage (the first
 *    error after the client was ready or a command last succeeded).
 *  - reset deletes the counters of the windows containing `clock.now()` and the one
 *    before: pass the same clock as the Check's.
 */
import Redis from 'ioredis';
import type { Clock } from '../util/clock';
import { systemClock } from '../util/clock';
import { LimiterUnavailableError, type RateDecision, type RateLimiter, type RateLimiterStats } from './types';
import { withDeadline } from './deadline';
import { checkLimit, decision, MemoryRateLimiter, WINDOW_MS, windowStartOf } from './sliding-window';

export interface RedisRateLimiterOptions {
  /** redis:// or rediss:// URL. */
  url: string;
  onFailure: 'local' | 'deny';
  /** A command without a reply by then fails; default 100. */
  commandTimeoutMs?: number;
  /** Default 1000. */
  connectTimeoutMs?: number;
  /** No byte from Redis for this long while commands wait: the connection is dropped and reopened. Default 1000. */
  socketTimeoutMs?: number;
  /** Of the local fallback; default 1,000,000. */
  maxKeys?: number;
  onError?: (e: unknown) => void;
  /** Used by reset only; default the system clock. */
  clock?: Clock;
  /** CLIENT SETNAME of the connection; default `keyward-ratelimit`. */
  connectionName?: string;
}

/** KEYS: current window, previous window. ARGV: limit, elapsed ms, window ms, 1 = spend | 0 = peek. */
const CONSUME_LUA = `
local limit = tonumber(ARGV[1])
local elapsed = tonumber(ARGV[2])
local w = tonumber(ARGV[3])
local curr = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local allowed = 0
if prev * (w - elapsed) + (curr + 1) * w <= limit * w then
  allowed = 1
  if ARGV[4] == '1' then
    curr = redis.call('INCR', KEYS[1])
    redis.call('PEXPIRE', KEYS[1], 2 * w)
  end
end
return {allowed, prev, curr}
`;

/** KEYS: current window. */
const REFUND_LUA = `
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v > 0 then return redis.call('DECR', KEYS[1]) end
return -1
`;

type ScriptedRedis = Redis & {
  kwRateConsume(
    curr: string,
    prev: string,
    limit: number,
    elapsed: number,
    windowMs: number,
    spend: 0 | 1,
  ): Promise<[number, number, number]>;
  kwRateRefund(curr: string): Promise<number>;
};

export function windowKey(keyId: string, windowStart: number): string {
  return `kw:rl:{${keyId}}:${windowStart}`;
}

export class RedisRateLimiter implements RateLimiter {
  readonly backend = 'redis' as const;
  /** The limiter's connection; exposed for diagnostics and tests. */
  readonly client: Redis;
  private readonly redis: ScriptedRedis;
  private readonly fallback: MemoryRateLimiter;
  private readonly onFailure: 'local' | 'deny';
  private readonly onError: (e: unknown) => void;
  private readonly clock: Clock;
  private readonly commandTimeoutMs: number;
  /** Pending while the first connection attempt is under way. */
  private startup: Promise<void> | null;
  private failing = false;
  private closed = false;
  private allowed = 0;
  private limited = 0;
  private redisErrors = 0;
  private fallbackDecisions = 0;

  constructor(opts: RedisRateLimiterOptions) {
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 100;
    this.onFailure = opts.onFailure;
    this.onError = opts.onError ?? (() => undefined);
    this.clock = opts.clock ?? systemClock;
    this.fallback = new MemoryRateLimiter({ maxKeys: opts.maxKeys });
    const connectTimeout = opts.connectTimeoutMs ?? 1000;
    this.client = new Redis(opts.url, {
      // Calls carry their own stall-tolerant deadline (./deadline); ioredis's is a backstop.
      commandTimeout: Math.max(1000, 10 * this.commandTimeoutMs),
      connectTimeout,
      socketTimeout: opts.socketTimeoutMs ?? 1000,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      // A command cut off by a lost connection has already been answered (timeout):
      // resending it after the reconnect would count the request twice.
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times - 1, 5), 2000),
      connectionName: opts.connectionName ?? 'keyward-ratelimit',
      // close() on a dead connection: ioredis waits this long for a socket that already
      // closed (default 2 s, holding the process open).
      disconnectTimeout: 100,
    });
    this.client.defineCommand('kwRateConsume', { numberOfKeys: 2, lua: CONSUME_LUA });
    this.client.defineCommand('kwRateRefund', { numberOfKeys: 1, lua: REFUND_LUA });
    this.redis = this.client as ScriptedRedis;
    this.client.on('error', (e: unknown) => this.report(e));
    this.client.on('ready', () => {
      this.failing = false;
    });
    this.startup = new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.client.off('ready', done);
        this.client.off('close', done);
        this.startup = null;
        resolve();
      };
      const timer = setTimeout(done, connectTimeout);
      timer.unref();
      this.client.once('ready', done);
      this.client.once('close', done);
    });
  }

  async consume(keyId: string, limit: number, nowMs: number): Promise<RateDecision> {
    checkLimit(limit);
    const now = Math.floor(nowMs);
    let d: RateDecision;
    try {
      d = await this.run(keyId, limit, now, 1);
      this.fallback.sweep(now);
    } catch (e) {
      this.failed(e);
      d = this.fallback.consume(keyId, limit, now);
      this.fallbackDecisions++;
    }
    if (d.allowed) this.allowed++;
    else this.limited++;
    return d;
  }

  async peek(keyId: string, limit: number, nowMs: number): Promise<RateDecision> {
    checkLimit(limit);
    const now = Math.floor(nowMs);
    try {
      return await this.run(keyId, limit, now, 0);
    } catch (e) {
      this.failed(e);
      return this.fallback.peek(keyId, limit, now);
    }
  }

  async refund(keyId: string, nowMs: number): Promise<void> {
    const now = Math.floor(nowMs);
    try {
      if (this.startup) await this.startup;
      await withDeadline(this.redis.kwRateRefund(windowKey(keyId, windowStartOf(now))), this.commandTimeoutMs);
      this.failing = false;
    } catch (e) {
      this.redisErrors++;
      this.report(e);
      this.fallback.refund(keyId, now);
    }
  }

  async reset(keyId: string): Promise<void> {
    const ws = windowStartOf(this.clock.now().getTime());
    await this.fallback.reset(keyId);
    try {
      if (this.startup) await this.startup;
      await withDeadline(this.client.del(windowKey(keyId, ws), windowKey(keyId, ws - WINDOW_MS)), this.commandTimeoutMs);
      this.failing = false;
    } catch (e) {
      this.redisErrors++;
      this.report(e);
      throw new LimiterUnavailableError(e);
    }
  }

  stats(): RateLimiterStats {
    return {
      backend: 'redis',
      trackedKeys: this.fallback.stats().trackedKeys,
      allowed: this.allowed,
      limited: this.limited,
      redisErrors: this.redisErrors,
      fallbackDecisions: this.fallbackDecisions,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fallback.close();
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
        return;
      } catch {
        // Lost meanwhile: disconnect below.
      }
    }
    this.client.disconnect();
  }

  private async run(keyId: string, limit: number, now: number, spend: 0 | 1): Promise<RateDecision> {
    if (this.startup) await this.startup;
    const ws = windowStartOf(now);
    const elapsed = now - ws;
    const [ok, prev, curr] = await withDeadline(
      this.redis.kwRateConsume(windowKey(keyId, ws), windowKey(keyId, ws - WINDOW_MS), limit, elapsed, WINDOW_MS, spend),
      this.commandTimeoutMs,
    );
    this.failing = false;
    return decision(ok === 1, limit, Number(prev), Number(curr), elapsed);
  }

  /** Counts a failed consume/peek; throws in deny mode. */
  private failed(e: unknown): void {
    this.redisErrors++;
    this.report(e);
    if (this.onFailure === 'deny') throw new LimiterUnavailableError(e);
  }

  private report(e: unknown): void {
    if (this.failing) return;
    this.failing = true;
    try {
      this.onError(e);
    } catch {
      // A logger that throws must not take the limiter down.
    }
  }
}
