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
 * KEYS: the hash. ARGV: limit, the caller's sub-window, sub-windows counted (13),
 * 1 = spend | 0 = peek, TTL ms. A sub-window behind `h` (a clock stepped back, or a
 * replica behind another) is judged and counted as `h`. Allowed iff the sum of the 13
 * counts < limit; a spend then HINCRBYs the sub-window, moves `h` forward (HDELs the
 * fields that left the window) and PEXPIREs the hash.
 * Returns {allowed, sub-window used, count oldest .. count newest} (after the spend).
 */
export const STRICT_CONSUME_LUA = `
local limit = tonumber(ARGV[1])
local sub = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local head = tonumber(redis.call('HGET', KEYS[1], 'h') or '-1')
if head > sub then sub = head end
local fields = {}
for j = 1, n do fields[j] = string.format('%d', sub - n + j) end
local vals = redis.call('HMGET', KEYS[1], unpack(fields))
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
  if ARGV[4] == '1' then
    counts[n] = redis.call('HINCRBY', KEYS[1], fields[n], 1)
    if sub > head then
      if head >= 0 then
        local last = math.min(head, sub - n)
        for s = head - n + 1, last do redis.call('HDEL', KEYS[1], string.format('%d', s)) end
      end
      redis.call('HSET', KEYS[1], 'h', string.format('%d', sub))
    end
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
  end
end
local out = {allowed, sub}
for j = 1, n do out[j + 2] = counts[j] end
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
