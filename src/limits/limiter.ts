/**
 * Picks the rate limiter once at start, and the response headers the Check derives
 * from a RateDecision.
 *
 * Mode (KEYWARD_RATE_LIMIT_MODE): `strict` (default; strict-window.ts, never more than the
 * limit in any 60 s span) or `approximate` (sliding-window.ts), for both backends.
 * Backend: Redis when `redisUrl` is set (shared by every replica; see
 * redis-limiter.ts for what `onRedisFailure` does), else in memory (this process).
 *
 * Headers (names lower-case, values from one decision; the Check adds them to allowed
 * responses and to 429s alike):
 *  - x-ratelimit-limit:     requests per 60 s window (the key's limit).
 *  - x-ratelimit-remaining: requests still allowed now, after this one.
 *  - x-ratelimit-reset:     whole seconds until the sliding window frees a request;
 *                           0 while requests remain. NOT an epoch timestamp.
 *  - ratelimit-policy / ratelimit: the same as structured fields of the IETF draft
 *    draft-ietf-httpapi-ratelimit-headers, one policy named "default":
 *      ratelimit-policy: "default";q=<limit>;w=60
 *      ratelimit:        "default";r=<remaining>;t=<x-ratelimit-reset>
 * A 429 also carries retry-after = max(1, resetSeconds) (src/authz/decision.ts).
 */
import type { Clock } from '../util/clock';
import { RedisRateLimiter, type RateLimitMode } from './redis-limiter';
import { MemoryRateLimiter } from './sliding-window';
import { StrictRateLimiter } from './strict-window';
import type { RateDecision, RateLimiter } from './types';

export interface CreateRateLimiterOptions {
  redisUrl?: string;
  onRedisFailure: 'local' | 'deny';
  /** Default `strict`. */
  mode?: RateLimitMode;
  /** Keys tracked in memory (the memory backend, or Redis's local fallback); default 1,000,000. */
  maxKeys?: number;
  /** Redis client errors, at most once per outage. */
  onError?: (e: unknown) => void;
  /** The clock the Check uses; the Redis backend's reset needs it. Default the system clock. */
  clock?: Clock;
}

export function createRateLimiter(opts: CreateRateLimiterOptions): RateLimiter {
  if (opts.redisUrl) {
    return new RedisRateLimiter({
      url: opts.redisUrl,
      onFailure: opts.onRedisFailure,
      mode: opts.mode ?? 'strict',
      maxKeys: opts.maxKeys,
      onError: opts.onError,
      clock: opts.clock,
    });
  }
  return (opts.mode ?? 'strict') === 'strict'
    ? new StrictRateLimiter({ maxKeys: opts.maxKeys })
    : new MemoryRateLimiter({ maxKeys: opts.maxKeys });
}

/**
 * The rate-limit headers of a Check's answer, in this order: the legacy
 * `x-ratelimit-*` trio and the IETF draft's `ratelimit-policy` and `ratelimit`. The
 * names and the two structured values are defined here only.
 */
export const RATE_LIMIT_HEADERS = {
  limit: 'x-ratelimit-limit',
  remaining: 'x-ratelimit-remaining',
  reset: 'x-ratelimit-reset',
  policy: 'ratelimit-policy',
  ratelimit: 'ratelimit',
} as const;

export const rateLimitPolicy = (limit: number): string => `"default";q=${limit};w=60`;
export const rateLimitState = (remaining: number, resetSeconds: number): string => `"default";r=${remaining};t=${resetSeconds}`;

export function rateLimitHeaders(d: RateDecision): [string, string][] {
  const h = RATE_LIMIT_HEADERS;
  return [
    [h.limit, String(d.limit)],
    [h.remaining, String(d.remaining)],
    [h.reset, String(d.resetSeconds)],
    [h.policy, rateLimitPolicy(d.limit)],
    [h.ratelimit, rateLimitState(d.remaining, d.resetSeconds)],
  ];
}
