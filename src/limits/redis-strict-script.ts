/**
 * The strict rate limit in Redis (strict-window.ts's 13 sub-window counters): one hash per
 * key, decided atomically by one Lua script per consume, peek or refund.
 */
import { SUB_WINDOW_MS } from './strict-window';

/**
 * Key of a key's hash: `kw:rls:{<keyId>}`. Fields: `h` the latest sub-window counted
 * (floor(ms / 5000)), and one field per live sub-window index with its count. It
 * expires 65 s (60 s + one sub-window) after its last increment: by then every count in
 * it has left the window.
 */
export function strictKey(keyId: string): string {
  return `kw:rls:{${keyId}}`;
}

export const STRICT_TTL_MS = 60_000 + SUB_WINDOW_MS;

/**
 * STRICT_CONSUME_LUA (the function `consume` in it). KEYS: the hash. ARGV: limit, the
 * caller's sub-window, sub-windows counted (13), 1 = spend | 0 = peek, TTL ms. One HMGET
 * reads `h` and the 13 counts. A sub-window behind `h` (a clock stepped back, or a
 * replica behind another) is judged and counted as `h` (a second HMGET reads its counts). Allowed iff the sum of the 13
 * counts < limit; a spend then HINCRBYs the sub-window, moves `h` forward (HDELs the
 * fields that left the window) and PEXPIREs the hash.
 * Returns {allowed, sub-window used, count oldest .. count newest} (after the spend).
 */
const STRICT_CONSUME_FN = `
local function consume(key, limit, sub, n, spend, ttl)
  local fields = {}
  for j = 1, n do fields[j] = string.format('%d', sub - n + j) end
  fields[n + 1] = 'h'
  local vals = redis.call('HMGET', key, unpack(fields))
  local head = tonumber(vals[n + 1] or '-1')
  if head > sub then
    sub = head
    for j = 1, n do fields[j] = string.format('%d', sub - n + j) end
    vals = redis.call('HMGET', key, unpack(fields, 1, n))
  end
  local counts = {}
  local sum = 0
  for j = 1, n do
    local c = tonumber(vals[j] or '0')
    counts[j] = c
    sum = sum + c
  end
  local allowed = 0
  if sum < limit then
    allowed = 1
    if spend == '1' then
      counts[n] = redis.call('HINCRBY', key, fields[n], 1)
      if sub > head then
        if head >= 0 then
          local last = math.min(head, sub - n)
          for s = head - n + 1, last do redis.call('HDEL', key, string.format('%d', s)) end
        end
        redis.call('HSET', key, 'h', string.format('%d', sub))
      end
      redis.call('PEXPIRE', key, ttl)
    end
  end
  local out = {allowed, sub}
  for j = 1, n do out[j + 2] = counts[j] end
  return out
end
`;

export const STRICT_CONSUME_LUA = `${STRICT_CONSUME_FN}
return consume(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]))
`;

/**
 * Consumes (spends) for many keys in one call, each exactly as STRICT_CONSUME_LUA, in
 * order. KEYS: the hashes. ARGV: sub-windows counted (13), TTL ms, then limit and
 * sub-window of each key. Returns the replies of STRICT_CONSUME_LUA one after another
 * (2 + 13 numbers each).
 */
export const STRICT_CONSUME_BATCH_LUA = `${STRICT_CONSUME_FN}
local n = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local out = {}
local k = 0
for i = 1, #KEYS do
  local r = consume(KEYS[i], tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i]), n, '1', ttl)
  for j = 1, #r do out[k + j] = r[j] end
  k = k + #r
end
return out
`;

/** KEYS: the hash. Takes one back from the latest sub-window (`h`) if it is > 0. */
export const STRICT_REFUND_LUA = `
local head = redis.call('HGET', KEYS[1], 'h')
if not head then return -1 end
local v = tonumber(redis.call('HGET', KEYS[1], head) or '0')
if v > 0 then return redis.call('HINCRBY', KEYS[1], head, -1) end
return -1
`;
