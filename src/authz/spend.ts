/**
 * Step 8 of the Check, for a request every other step allowed: the rate limit, then the
 * monthly quota, so that a denied request spends nothing (limits/types.ts).
 */
import { StoreUnavailableError } from '../errors/domain';
import { LimiterUnavailableError, type QuotaCounter, type QuotaDecision, type RateDecision, type RateLimiter } from '../limits/types';
import { attempt, type MaybePromise } from '../util/maybe-async';
import type { Decision, KeyView, OrgView } from './decision';

/** The key's requests-per-minute limit: its own override, else its organization's; 0 = unlimited. */
export function effectiveRateLimit(key: KeyView, org: OrgView): number {
  return key.rateLimitPerMinute ?? org.rateLimitPerMinute;
}

/**
 * Step 8, pure: the outcome of an allowed request once the limiter and the quota have
 * answered (null: not limited). A quota denial reports the rate-limit request as given
 * back (LimitSpender refunds it).
 */
export function decideLimits(key: KeyView, org: OrgView, rate: RateDecision | null, quota: QuotaDecision | null, nowMs: number): Decision {
  if (rate && !rate.allowed) {
    const retry = Math.max(1, rate.resetSeconds);
    return {
      allow: false,
      code: 'rate_limit_exceeded',
      key,
      rate,
      retryAfterSeconds: retry,
      details: { limit: rate.limit, retry_after_seconds: retry },
    };
  }
  if (quota && !quota.allowed) {
    const retry = Math.max(1, Math.ceil((quota.period.end.getTime() - nowMs) / 1000));
    const refunded = rate && { ...rate, remaining: Math.min(rate.limit, rate.remaining + 1), resetSeconds: 0 };
    return {
      allow: false,
      code: 'monthly_quota_exceeded',
      key,
      quota,
      ...(refunded && { rate: refunded }),
      retryAfterSeconds: retry,
      details: { limit: quota.limit, used: quota.used, period_end: quota.period.end.toISOString(), retry_after_seconds: retry },
    };
  }
  const allowed: Decision = { allow: true, key, org };
  if (rate) allowed.rate = rate;
  if (quota) allowed.quota = quota;
  return allowed;
}

export interface LimitSpenderDeps {
  limiter: RateLimiter;
  quota: QuotaCounter;
  /** KEYWARD_ON_STORE_ERROR: what a limiter or quota that cannot answer becomes. */
  onStoreError: 'deny' | 'error';
}

/**
 * Spends step 8 for an allowed key. Order: the rate limit (denied: nothing spent), then
 * the quota; when the quota denies or fails, the rate-limit request is given back first.
 * An organization without a quota is still counted (QuotaCounter.count, synchronous).
 * A limiter or quota that cannot answer (LimiterUnavailableError) is a service_unavailable
 * denial, or StoreUnavailableError in `error` mode; any other failure propagates.
 * Synchronous with the in-memory limiter and quota; a Promise when one of them answers
 * with one (Redis, a database sync).
 */
export class LimitSpender {
  constructor(private readonly deps: LimitSpenderDeps) {}

  spend(key: KeyView, org: OrgView, nowMs: number): MaybePromise<Decision> {
    const limit = effectiveRateLimit(key, org);
    if (limit <= 0) return this.spendQuota(key, org, null, nowMs);
    // attempt() spelled out: no closure per Check while the limiter answers synchronously.
    let rate: MaybePromise<RateDecision>;
    try {
      rate = this.deps.limiter.consume(key.id, limit, nowMs);
    } catch (error) {
      return this.unavailable(key, error);
    }
    if (rate instanceof Promise)
      return rate.then(
        (r) => this.spendQuota(key, org, r, nowMs),
        (error: unknown) => this.unavailable(key, error),
      );
    return this.spendQuota(key, org, rate, nowMs);
  }

  private spendQuota(key: KeyView, org: OrgView, rate: RateDecision | null, nowMs: number): MaybePromise<Decision> {
    if (rate && !rate.allowed) return decideLimits(key, org, rate, null, nowMs);
    if (org.monthlyQuota <= 0) {
      // Counted without a quota too (no I/O), so that a quota set mid-period starts from what was used.
      this.deps.quota.count(org, nowMs);
      return decideLimits(key, org, rate, null, nowMs);
    }
    let quota: MaybePromise<QuotaDecision>;
    try {
      quota = this.deps.quota.consume(org, nowMs);
    } catch (error) {
      return this.refundThen(key, rate, nowMs, () => this.unavailable(key, error));
    }
    if (quota instanceof Promise)
      return quota.then(
        (q) => this.afterQuota(key, org, rate, q, nowMs),
        (error: unknown) => this.refundThen(key, rate, nowMs, () => this.unavailable(key, error)),
      );
    return this.afterQuota(key, org, rate, quota, nowMs);
  }

  private afterQuota(key: KeyView, org: OrgView, rate: RateDecision | null, quota: QuotaDecision, nowMs: number): MaybePromise<Decision> {
    if (quota.allowed) return decideLimits(key, org, rate, quota, nowMs);
    return this.refundThen(key, rate, nowMs, () => decideLimits(key, org, rate, quota, nowMs));
  }

  /** Gives back the rate-limit request `rate` spent (if any), then decides with `next`. */
  private refundThen(key: KeyView, rate: RateDecision | null, nowMs: number, next: () => Decision): MaybePromise<Decision> {
    if (!rate) return next();
    return attempt(
      () => this.deps.limiter.refund(key.id, nowMs),
      next,
      (error) => this.unavailable(key, error),
    );
  }

  /** A limiter or quota that cannot answer; anything else is rethrown. */
  private unavailable(key: KeyView, error: unknown): Decision {
    if (!(error instanceof LimiterUnavailableError)) throw error;
    if (this.deps.onStoreError === 'error') throw new StoreUnavailableError(error);
    return { allow: false, code: 'service_unavailable', key };
  }
}
