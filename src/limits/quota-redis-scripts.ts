/** The quota's Redis keys and Lua scripts (see quota-redis.ts). */
import type Redis from 'ioredis';

/** Keys live this long after their period ends (GetQuota of the previous period, late reports). */
export const QUOTA_KEY_GRACE_MS = 35 * 24 * 60 * 60 * 1000;

export function quotaKey(organizationId: string, periodStartMs: number): string {
  return `kw:quota:{${organizationId}}:${periodStartMs}`;
}

/**
 * KEYS[1] the counter; ARGV[1] limit, ARGV[2] expire-at (ms), ARGV[3] requests counted
 * during a Redis failure to add first (0 normally). Returns {allowed 0|1, count}.
 */
const CONSUME_LUA = `
local add = tonumber(ARGV[3])
local c
if add > 0 then
  c = redis.call('INCRBY', KEYS[1], add)
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
else
  c = tonumber(redis.call('GET', KEYS[1]) or '0')
end
if c < tonumber(ARGV[1]) then
  c = redis.call('INCR', KEYS[1])
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  return {1, c}
end
return {0, c}
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
  keywardQuotaAdd(key: string, add: number, expireAtMs: number): Promise<number>;
  keywardQuotaRaise(key: string, floor: number, expireAtMs: number, add: number): Promise<number>;
}

/** Defines the scripts on a client (once per client); returns it typed with them. */
export function defineQuotaScripts(client: Redis): QuotaScripts {
  client.defineCommand('keywardQuotaConsume', { numberOfKeys: 1, lua: CONSUME_LUA });
  client.defineCommand('keywardQuotaAdd', { numberOfKeys: 1, lua: ADD_LUA });
  client.defineCommand('keywardQuotaRaise', { numberOfKeys: 1, lua: RAISE_LUA });
  return client as unknown as QuotaScripts;
}
