/**
 * Contracts of the rate limiter and the monthly quota, step 8 of the Check. Both are
 * chosen once at start: in memory (one process) or Redis (KEYWARD_REDIS_URL, shared by
 * every replica).
 *
 * Spending order (nothing is spent by a request that is denied):
 *   1. limiter.consume(key)  — denied: rate_limit_exceeded, nothing spent;
 *   2. quota.consume(org)    — denied: monthly_quota_exceeded, and limiter.refund(key)
 *                              gives back the request spent in 1.
 */

/** The rate-limit state of one key after a consume/peek. */
export interface RateDecision {
  allowed: boolean;
  /** Requests per minute (the window is 60 s). */
  limit: number;
  /** Requests that would still be allowed now (after this one, for a consume). */
  remaining: number;
  /** Whole seconds until the window frees at least one request; 0 when remaining > 0. */
  resetSeconds: number;
}

export interface RateLimiterStats {
  backend: 'memory' | 'redis';
  trackedKeys: number;
  allowed: number;
  limited: number;
  redisErrors: number;
  fallbackDecisions: number;
}

/** Thrown by a Redis limiter or quota in `deny` failure mode: the Check answers 503. */
export class LimiterUnavailableError extends Error {
  constructor(cause?: unknown) {
    super('the rate limiter is unavailable');
    this.name = 'LimiterUnavailableError';
    this.cause = cause;
  }
}

/**
 * A sliding-window rate limiter over 60-second windows, per key id.
 * `limit` is > 0 (0 means unlimited and never reaches the limiter).
 */
export interface RateLimiter {
  readonly backend: 'memory' | 'redis';
  /** Spends one request if the window allows it, atomically. */
  consume(keyId: string, limit: number, nowMs: number): RateDecision | Promise<RateDecision>;
  /** Gives back one request spent at nowMs (the quota then denied). */
  refund(keyId: string, nowMs: number): void | Promise<void>;
  /** The state without spending. */
  peek(keyId: string, limit: number, nowMs: number): Promise<RateDecision>;
  /** Forgets the key's window. */
  reset(keyId: string): Promise<void>;
  stats(): RateLimiterStats;
  close(): Promise<void>;
}

/** An organization's billing period: [start, end), 00:00 UTC on its anchor day. */
export interface BillingPeriod {
  start: Date;
  end: Date;
}

export interface QuotaDecision {
  allowed: boolean;
  /** Requests per period; > 0 (0 means unlimited and never reaches the counter). */
  limit: number;
  /** Counted in the period, including this request when allowed. */
  used: number;
  period: BillingPeriod;
}

export interface QuotaOrg {
  id: string;
  monthlyQuota: number;
  billingAnchorDay: number;
}

export interface QuotaCounter {
  readonly backend: 'memory' | 'redis';
  /** Counts one request if the period's quota allows it. */
  consume(org: QuotaOrg, nowMs: number): QuotaDecision | Promise<QuotaDecision>;
  /**
   * Counts one allowed request of an organization without a quota (monthlyQuota 0):
   * never refuses, synchronous, no I/O; the count reaches the shared store (the
   * database, or Redis) with the next flush. So a quota set later in the period starts
   * from what was already used.
   */
  count(org: QuotaOrg, nowMs: number): void;
  /**
   * Raises the count of org's period at nowMs to at least `used` (max, never added),
   * after sending this replica's own counts, so that they are not counted twice. Used
   * when a quota or an anchor day changes (src/admin/limits.ts). Rejects when the store
   * (or Redis) fails; it can be retried.
   */
  seed(org: QuotaOrg, nowMs: number, used: number): Promise<void>;
  /** The period's count without spending (for GetQuota). */
  used(org: QuotaOrg, nowMs: number): Promise<{ used: number; period: BillingPeriod }>;
  /** Writes pending counts to the shared store (the database sync of the memory backend). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** One billing period of one organization, by its start (epoch ms). */
export interface QuotaPeriod {
  organizationId: string;
  startMs: number;
}

/** One period's stored count. */
export interface QuotaRow extends QuotaPeriod {
  count: number;
}

/**
 * The database half of the quota (table quota_counters), as the quota backends need it;
 * implemented by src/store/quota-counters.ts. Each method rejects when the database fails.
 */
export interface QuotaStore {
  /** One period's stored count, 0 when it has no row. */
  count(organizationId: string, startMs: number): Promise<number>;
  /**
   * In ONE transaction: count += row.count for each of `adds` (inserting missing rows),
   * then the stored counts of `reads`. Returns the new totals of `adds` and the counts
   * of `reads` (a period with no row is absent).
   */
  sync(adds: readonly QuotaRow[], reads: readonly QuotaPeriod[]): Promise<QuotaRow[]>;
  /** count = max(count, row.count) for each row (inserting missing rows), in one transaction. */
  raiseTo(rows: readonly QuotaRow[]): Promise<void>;
}
