/**
 * The monthly quota counter, chosen once at start: Redis when KEYWARD_REDIS_URL is set
 * (exact across replicas, see quota-redis.ts), otherwise counted in memory and synced
 * through the database (bounded overshoot across replicas, see quota-memory.ts).
 * The caller runs start() after creating it and close() at shutdown.
 */
import type Redis from 'ioredis';
import { DbSyncedQuotaCounter } from './quota-memory';
import { RedisQuotaCounter } from './quota-redis';
import type { QuotaStore } from './types';

export { billingPeriod } from './billing';
export { DbSyncedQuotaCounter } from './quota-memory';
export { RedisQuotaCounter, quotaKey } from './quota-redis';

export interface QuotaCounterOptions {
  /** quota_counters (src/store/quota-counters.ts): the memory backend's sync, the Redis backend's persistence and fallback. */
  store: QuotaStore;
  /** KEYWARD_REDIS_URL; set: the Redis backend. */
  redisUrl?: string;
  /** A Redis client to share instead of redisUrl (left open by close()). */
  redis?: Redis;
  /** KEYWARD_REDIS_FAILURE_MODE (Redis backend). Default `local`. */
  redisFailureMode?: 'local' | 'deny';
  /** KEYWARD_QUOTA_SYNC_SECONDS × 1000: flush interval of start(). */
  syncIntervalMs: number;
  onError?: (e: unknown) => void;
}

export function createQuotaCounter(opts: QuotaCounterOptions): DbSyncedQuotaCounter | RedisQuotaCounter {
  const redis = opts.redis ?? opts.redisUrl;
  if (redis !== undefined) {
    return new RedisQuotaCounter({
      redis,
      onFailure: opts.redisFailureMode ?? 'local',
      store: opts.store,
      syncIntervalMs: opts.syncIntervalMs,
      onError: opts.onError,
    });
  }
  return new DbSyncedQuotaCounter({ store: opts.store, syncIntervalMs: opts.syncIntervalMs, onError: opts.onError });
}
