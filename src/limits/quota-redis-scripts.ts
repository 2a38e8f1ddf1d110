/** The quota's Redis keys and Lua scripts (see quota-redis.ts). */
import type Redis from 'ioredis';
import { RedisBatcher } from '../redis/batch';
import type { RedisConnection } from '../redis/client';

/** Keys live this long after their period ends (GetQuota of the previous period, late reports). */
export const QUOTA_KEY_GRACE_MS = 35 * 24 * 60 * 60 * 1000;

export function quotaKey(organizationId: string, periodStartMs: number): string {
  return `kw:quota:{${organizationId}}:${periodStartMs}`;
}

/**
 * KEYS[1] the counter; ARGV[1] limit, ARGV[2] expire-at (ms), ARGV[3] requests counted
 * during a Redis failure to add first (0 normally). Returns {allowed 0|1, count}.
 */
const CONSUME_FN = `
local function consume(key, limit, expireAt, add)
  local c
  if add > 0 then
    c = redis.call('INCRBY', key, add)
    redis.call('PEXPIREAT', key, expireAt)
  else
    c = tonumber(redis.call('GET', key) or '0')
  end
  if c < limit then
    c = redis.call('INCR', key)
    -- A new counter gets its expiry; an existing one has it (every write here sets it).
    if c == 1 then redis.call('PEXPIREAT', key, expireAt) end
    return {1, c}
  end
  return {0, c}
end
`;
const CONSUME_LUA = `${CONSUME_FN}
return consume(KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]))
`;

/**
 * Many consumes in one call, each as CONSUME_LUA, in order. KEYS: the counters (a key
 * may repeat); ARGV: limit, expire-at and add of each. Returns {allowed, count} of
 * each, one after another.
 */
const CONSUME_BATCH_LUA = `${CONSUME_FN}
local out = {}
for i = 1, #KEYS do
  local r = consume(KEYS[i], tonumber(ARGV[3 * i - 2]), ARGV[3 * i - 1], tonumber(ARGV[3 * i]))
  out[2 * i - 1] = r[1]
  out[2 * i] = r[2]
end
return out
`;

/** KEYS[1] the counter; ARGV[1] to add, ARGV[2] expire-at (ms). Returns the count. */
const ADD_LUA = `
local c = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return c
`;

/**
 * KEYS[1] the counter; ARGV[1] the floor, ARGV[2] expire-at (ms), ARGV[3] requests
 * counted here and not yet added. Sets count = max(count + added, floor); returns it.
 */
const RAISE_LUA = `
local c = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(ARGV[3])
local v = tonumber(ARGV[1])
if v > c then
  c = v
end
redis.call('SET', KEYS[1], c)
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return c
`;

export interface QuotaScripts {
  keywardQuotaConsume(key: string, limit: number, expireAtMs: number, add: number): Promise<[number, number]>;
  /** numkeys, the keys, then limit, expire-at and add of each: {allowed, count} of each, flat. */
  keywardQuotaConsumeBatch(...args: (string | number)[]): Promise<number[]>;
  keywardQuotaAdd(key: string, add: number, expireAtMs: number): Promise<number>;
  keywardQuotaRaise(key: string, floor: number, expireAtMs: number, add: number): Promise<number>;
}

/** Defines the scripts on a client (once per client); returns it typed with them. */
export function defineQuotaScripts(client: Redis): QuotaScripts {
  client.defineCommand('keywardQuotaConsume', { numberOfKeys: 1, lua: CONSUME_LUA });
  client.defineCommand('keywardQuotaConsumeBatch', { lua: CONSUME_BATCH_LUA });
  client.defineCommand('keywardQuotaAdd', { numberOfKeys: 1, lua: ADD_LUA });
  client.defineCommand('keywardQuotaRaise', { numberOfKeys: 1, lua: RAISE_LUA });
  return client as unknown as QuotaScripts;
}

/** One consume (CONSUME_LUA's arguments) for the batch script. */
export interface QuotaConsumeItem {
  key: string;
  limit: number;
  expireAt: number;
  add: number;
}

/** The consumes of one event-loop turn in one keywardQuotaConsumeBatch call (../redis/batch). */
export function quotaConsumeBatcher(connection: RedisConnection, scripts: QuotaScripts): RedisBatcher<QuotaConsumeItem, [number, number]> {
  return new RedisBatcher(connection, async (_client, items) => {
    const args: (string | number)[] = [items.length];
    for (const it of items) args.push(it.key);
    for (const it of items) args.push(it.limit, it.expireAt, it.add);
    const flat = await scripts.keywardQuotaConsumeBatch(...args);
    const out: [number, number][] = [];
    for (let i = 0; i < flat.length; i += 2) out.push([Number(flat[i]), Number(flat[i + 1])]);
    return out;
  });
}
