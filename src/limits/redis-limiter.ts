/**
 * The rate limiter shared by every replica through Redis, decided atomically by a Lua
 * script: the strict sub-window counters of strict-window.ts (redis-strict-script.ts), or
 * the approximate sliding-window counter of sliding-window.ts.
 */
import type Redis from 'ioredis';
import type { Clock } from '../util/clock';
import { systemClock } from '../util/clock';
import { RedisBatcher } from '../redis/batch';
import { RedisConnection } from '../redis/client';
import { LimiterUnavailableError, type RateDecision, type RateLimiter, type RateLimiterStats } from './types';
import { checkLimit, decision, MemoryRateLimiter, WINDOW_MS, windowStartOf } from './sliding-window';
import { STRICT_CONSUME_BATCH_LUA, STRICT_CONSUME_LUA, STRICT_REFUND_LUA, STRICT_TTL_MS, strictKey } from './redis-strict-script';
import { StrictRateLimiter, strictDecision, SUB_WINDOWS, subWindowOf } from './strict-window';

export type RateLimitMode = 'strict' | 'approximate';

export interface RedisRateLimiterOptions {
  /** redis:// or rediss:// URL. */
  url: string;
  onFailure: 'local' | 'deny';
  /** `strict` (the sub-window counters) or `approximate` (the sliding-window counter); default `approximate`. */
  mode?: RateLimitMode;
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
const CONSUME_FN = `
local function consume(kc, kp, limit, elapsed, w, spend)
  local curr = tonumber(redis.call('GET', kc) or '0')
  local prev = tonumber(redis.call('GET', kp) or '0')
  local allowed = 0
  if prev * (w - elapsed) + (curr + 1) * w <= limit * w then
    allowed = 1
    if spend == '1' then
      curr = redis.call('INCR', kc)
      redis.call('PEXPIRE', kc, 2 * w)
    end
  end
  return {allowed, prev, curr}
end
`;
const CONSUME_LUA = `${CONSUME_FN}
return consume(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
`;
/** Spends for many keys, each as CONSUME_LUA, in order. KEYS: current and previous window of each. ARGV: window ms, then limit and elapsed ms of each. */
const CONSUME_BATCH_LUA = `${CONSUME_FN}
local w = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS / 2 do
  local r = consume(KEYS[2 * i - 1], KEYS[2 * i], tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1]), w, '1')
  out[3 * i - 2] = r[1]
  out[3 * i - 1] = r[2]
  out[3 * i] = r[3]
end
return out
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
  kwStrictConsume(hash: string, limit: number, subWindow: number, subWindows: number, spend: 0 | 1, ttlMs: number): Promise<number[]>;
  kwStrictRefund(hash: string): Promise<number>;
  kwRateConsumeBatch(...args: (string | number)[]): Promise<number[]>;
  kwStrictConsumeBatch(...args: (string | number)[]): Promise<number[]>;
};

interface WindowItem {
  curr: string;
  prev: string;
  limit: number;
  elapsed: number;
}
interface StrictItem {
  hash: string;
  limit: number;
  subWindow: number;
}

/** The reply of a batch script, `stride` numbers per item. */
function split(flat: number[], stride: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < flat.length; i += stride) out.push(flat.slice(i, i + stride));
  return out;
}

export function windowKey(keyId: string, windowStart: number): string {
  return `kw:rl:{${keyId}}:${windowStart}`;
}

/**
 * Contract (mode `strict`: redis-strict-script.ts has the keys and the script; consume,
 * peek and refund are each one script, reset is one DEL; the rest is as below):
 *  - Keys: `kw:rl:{<keyId>}:<windowStart>`, one counter per key and window; the hash
 *    tag keeps a key's windows in one cluster slot. A counter expires 2 windows after
 *    its last increment. Time is the caller's `nowMs`, never Redis TIME, so replicas
 *    and tests decide by the clock they are given.
 *  - consume is one script call (EVALSHA; EVAL the first time on a connection), and
 *    the consumes of one event-loop turn share it (../redis/batch: one round trip and
 *    one script call for all of them, each decided in order as if alone): the
 *    script reads both windows, tests estimate + 1 <= limit, INCRs and PEXPIREs the
 *    current one if allowed, and returns {allowed, prev, curr}; remaining and
 *    resetSeconds are then computed here with the same functions as the memory limiter.
 *  - refund is one script: DECR the current window's counter if it is > 0.
 *  - Failures: the connection follows ../redis/client (fail fast within
 *    `commandTimeoutMs`, reconnect in the background, wait for the first connection
 *    attempt at startup, onError once per outage). A failed consume or peek counts in
 *    `redisErrors`; then `onFailure: 'local'` decides with an in-process
 *    MemoryRateLimiter (each replica then limits on its own: up to replicas x limit;
 *    consumes so decided count in `fallbackDecisions`), `'deny'` throws
 *    LimiterUnavailableError (the Check answers 503). A timed-out consume may still
 *    have been counted by Redis.
 *  - refund never throws: it is best effort (on failure the local fallback is refunded
 *    and the key loses at most one request until its window passes).
 *    reset throws LimiterUnavailableError in both modes when Redis fails (after
 *    resetting the fallback): it cannot be done locally.
 *  - reset deletes the counters of the windows containing `clock.now()` and the one
 *    before: pass the same clock as the Check's.
 */
export class RedisRateLimiter implements RateLimiter {
  readonly backend = 'redis' as const;
  /** The limiter's connection; exposed for diagnostics and tests. */
  readonly client: Redis;
  private readonly connection: RedisConnection;
  private readonly fallback: MemoryRateLimiter | StrictRateLimiter;
  private readonly mode: RateLimitMode;
  private readonly onFailure: 'local' | 'deny';
  private readonly clock: Clock;
  private allowed = 0;
  private limited = 0;
  private fallbackDecisions = 0;
  /** The consumes (spends) of one event-loop turn, one script call. */
  private readonly windowBatch: RedisBatcher<WindowItem, number[]>;
  private readonly strictBatch: RedisBatcher<StrictItem, number[]>;

  constructor(opts: RedisRateLimiterOptions) {
    this.onFailure = opts.onFailure;
    this.clock = opts.clock ?? systemClock;
    this.mode = opts.mode ?? 'approximate';
    this.fallback =
      this.mode === 'strict' ? new StrictRateLimiter({ maxKeys: opts.maxKeys }) : new MemoryRateLimiter({ maxKeys: opts.maxKeys });
    this.connection = RedisConnection.open({
      url: opts.url,
      connectionName: opts.connectionName ?? 'keyward-ratelimit',
      commandTimeoutMs: opts.commandTimeoutMs,
      connectTimeoutMs: opts.connectTimeoutMs,
      socketTimeoutMs: opts.socketTimeoutMs,
      onError: opts.onError,
    });
    this.client = this.connection.client;
    this.client.defineCommand('kwRateConsume', { numberOfKeys: 2, lua: CONSUME_LUA });
    this.client.defineCommand('kwRateRefund', { numberOfKeys: 1, lua: REFUND_LUA });
    this.client.defineCommand('kwStrictConsume', { numberOfKeys: 1, lua: STRICT_CONSUME_LUA });
    this.client.defineCommand('kwStrictRefund', { numberOfKeys: 1, lua: STRICT_REFUND_LUA });
    this.client.defineCommand('kwRateConsumeBatch', { lua: CONSUME_BATCH_LUA });
    this.client.defineCommand('kwStrictConsumeBatch', { lua: STRICT_CONSUME_BATCH_LUA });
    this.windowBatch = new RedisBatcher(this.connection, async (client, items) => {
      const args: (string | number)[] = [2 * items.length];
      for (const it of items) args.push(it.curr, it.prev);
      args.push(WINDOW_MS);
      for (const it of items) args.push(it.limit, it.elapsed);
      return split(await (client as ScriptedRedis).kwRateConsumeBatch(...args), 3);
    });
    this.strictBatch = new RedisBatcher(this.connection, async (client, items) => {
      const args: (string | number)[] = [items.length];
      for (const it of items) args.push(it.hash);
      args.push(SUB_WINDOWS, STRICT_TTL_MS);
      for (const it of items) args.push(it.limit, it.subWindow);
      return split(await (client as ScriptedRedis).kwStrictConsumeBatch(...args), 2 + SUB_WINDOWS);
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
      await this.connection.call((client) =>
        this.mode === 'strict'
          ? (client as ScriptedRedis).kwStrictRefund(strictKey(keyId))
          : (client as ScriptedRedis).kwRateRefund(windowKey(keyId, windowStartOf(now))),
      );
      this.connection.failures.succeeded();
    } catch (e) {
      this.connection.failures.failed(e);
      this.fallback.refund(keyId, now);
    }
  }

  async reset(keyId: string): Promise<void> {
    const ws = windowStartOf(this.clock.now().getTime());
    await this.fallback.reset(keyId);
    try {
      await this.connection.call((client) =>
        this.mode === 'strict' ? client.del(strictKey(keyId)) : client.del(windowKey(keyId, ws), windowKey(keyId, ws - WINDOW_MS)),
      );
      this.connection.failures.succeeded();
    } catch (e) {
      this.connection.failures.failed(e);
      throw new LimiterUnavailableError(e);
    }
  }

  stats(): RateLimiterStats {
    return {
      backend: 'redis',
      trackedKeys: this.fallback.stats().trackedKeys,
      allowed: this.allowed,
      limited: this.limited,
      redisErrors: this.connection.failures.errors,
      fallbackDecisions: this.fallbackDecisions,
    };
  }

  async close(): Promise<void> {
    await this.fallback.close();
    await this.connection.close();
  }

  private async run(keyId: string, limit: number, now: number, spend: 0 | 1): Promise<RateDecision> {
    if (this.mode === 'strict') return this.runStrict(keyId, limit, now, spend);
    const ws = windowStartOf(now);
    const elapsed = now - ws;
    const curr = windowKey(keyId, ws);
    const prev = windowKey(keyId, ws - WINDOW_MS);
    const [ok, prevCount, currCount] =
      spend === 1
        ? await this.windowBatch.run({ curr, prev, limit, elapsed })
        : await this.connection.call((client) => (client as ScriptedRedis).kwRateConsume(curr, prev, limit, elapsed, WINDOW_MS, 0));
    this.connection.failures.succeeded();
    return decision(Number(ok) === 1, limit, Number(prevCount), Number(currCount), elapsed);
  }

  private async runStrict(keyId: string, limit: number, now: number, spend: 0 | 1): Promise<RateDecision> {
    const hash = strictKey(keyId);
    const subWindow = subWindowOf(now);
    const reply =
      spend === 1
        ? await this.strictBatch.run({ hash, limit, subWindow })
        : await this.connection.call((client) =>
            (client as ScriptedRedis).kwStrictConsume(hash, limit, subWindow, SUB_WINDOWS, 0, STRICT_TTL_MS),
          );
    this.connection.failures.succeeded();
    const counts = reply.slice(2).map(Number);
    return strictDecision(Number(reply[0]) === 1, limit, counts, Number(reply[1]), now);
  }

  /** Counts a failed consume/peek; throws in deny mode. */
  private failed(e: unknown): void {
    this.connection.failures.failed(e);
    if (this.onFailure === 'deny') throw new LimiterUnavailableError(e);
  }
}
