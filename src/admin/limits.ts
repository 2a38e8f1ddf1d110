/** KeyAdmin's view of the data plane's limits: a key's rate-limit window, the limiter's counters, an organization's quota. */
import { DomainError } from '../errors/domain';
import { LimiterUnavailableError, type BillingPeriod, type QuotaCounter, type RateLimiter, type RateLimiterStats } from '../limits/types';
import type { UsageStore } from '../usage/store';
import { billingPeriod } from '../limits/billing';
import type { ApiKeyRecord, OrganizationRecord } from '../store/entities';
import type { AdminContext } from './context';
import type { CallContext } from './principal';
import * as validate from './validate';

/** A key's rate-limit window now. `limit` 0: unlimited. */
export interface RateLimitState {
  keyId: string;
  limit: number;
  remaining: number;
  resetSeconds: number;
  /** Whether the limit is the key's own or its organization's. */
  limitSource: 'organization' | 'key';
}

/** An organization's quota in its current billing period. `limit` 0: unlimited. */
export interface QuotaState {
  organizationId: string;
  limit: number;
  used: number;
  remaining: number;
  /** 0..100 (or more), two decimals. */
  percentUsed: number;
  periodStart: Date;
  periodEnd: Date;
}

export interface LimitsDeps {
  limiter: RateLimiter;
  quota: QuotaCounter;
  /** Flushed before an organization without a quota reads its usage aggregates. */
  usage: { flush(): Promise<void> };
  /** The usage aggregates: `used` of an organization without a quota. */
  usageStore: Pick<UsageStore, 'periodStats'>;
}

export class Limits {
  constructor(
    private readonly context: AdminContext,
    private readonly deps: LimitsDeps,
  ) {}

  async rateLimitStatus(caller: CallContext, id: string): Promise<RateLimitState> {
    const keyId = validate.id(id, 'key', 'key_id');
    const { key, org } = await this.context.tx(caller, (repos) =>
      this.context.loadKeyAndOrg(repos, caller, keyId, 'key.rate_limit_status'),
    );
    return this.rateState(key, org);
  }

  /**
   * Forgets the key's window, then reports it. Audited as `key.rate_limit_reset` after
   * the reset: `success` once it succeeded; when it failed (Redis unreachable:
   * service_unavailable, or anything else: internal), `denied` with that error code as
   * the reason, and the error is returned.
   */
  async resetRateLimit(caller: CallContext, id: string): Promise<RateLimitState> {
    const keyId = validate.id(id, 'key', 'key_id');
    const { key, org } = await this.context.tx(caller, (repos) => this.context.loadKeyAndOrg(repos, caller, keyId, 'key.rate_limit_reset'));
    const target = { organizationId: key.organizationId, keyId: key.id };
    const audit = (outcome: 'success' | 'denied', reason: string | null) =>
      this.context.store.transaction((repos) => {
        repos.audit.append(this.context.event(caller, 'key.rate_limit_reset', target, outcome, reason));
        return Promise.resolve();
      });
    try {
      await limiterCall(() => this.deps.limiter.reset(key.id));
    } catch (e) {
      const code = e instanceof DomainError ? e.code : 'internal';
      await audit('denied', code).catch(() => undefined); // the reset's error is the one to report
      throw e;
    }
    await audit('success', null);
    return this.rateState(key, org);
  }

  /** Administrator token only. */
  async limiterStats(caller: CallContext): Promise<RateLimiterStats> {
    await this.context.requireRoot(caller, 'rate_limiter.stats');
    return this.deps.limiter.stats();
  }

  /**
   * With a quota, `used` is the quota counter's; without one (limit 0), the allowed
   * Checks of the current billing period from the usage aggregates (this process's
   * buffer flushed first; other replicas lag by their flush interval), remaining and
   * percentUsed 0.
   */
  async quota(caller: CallContext, id: string): Promise<QuotaState> {
    const orgId = validate.id(id, 'org', 'organization_id');
    const org = await this.context.tx(caller, (repos) => this.context.loadOrg(repos, caller, orgId, 'quota.get'));
    const now = this.context.now().getTime();
    const limit = Number(org.monthlyQuota);
    const quotaOrg = { id: org.id, monthlyQuota: limit, billingAnchorDay: org.billingAnchorDay };
    const { used, period } = limit > 0 ? await this.deps.quota.used(quotaOrg, now) : await this.usedWithoutQuota(org, now);
    return {
      organizationId: org.id,
      limit,
      used,
      remaining: limit > 0 ? Math.max(0, limit - used) : 0,
      percentUsed: limit > 0 ? Math.round((used / limit) * 10000) / 100 : 0,
      periodStart: period.start,
      periodEnd: period.end,
    };
  }

  /**
   * After UpdateOrganization gave monthly_quota or billing_anchor_day (committed, caches
   * told): an organization with a quota has its current period's counter raised to at
   * least the allowed Checks of that period in the usage aggregates (this process's
   * usage buffer flushed first). max, not a sum: what the counter already holds (it also
   * counts organizations without a quota) is not counted twice. Idempotent, so a failure
   * (service_unavailable, or the store's error) is fixed by repeating the update.
   */
  async countUsedSoFar(org: OrganizationRecord): Promise<void> {
    const limit = Number(org.monthlyQuota);
    if (limit <= 0) return;
    const now = this.context.now().getTime();
    const { used } = await this.usedWithoutQuota(org, now);
    const quotaOrg = { id: org.id, monthlyQuota: limit, billingAnchorDay: org.billingAnchorDay };
    try {
      await this.deps.quota.seed(quotaOrg, now, used);
    } catch (e) {
      if (e instanceof LimiterUnavailableError)
        throw new DomainError(
          'service_unavailable',
          'the organization was updated, but its quota counter (Redis) is unavailable; repeat the update',
        );
      throw e;
    }
  }

  private async usedWithoutQuota(org: OrganizationRecord, now: number): Promise<{ used: number; period: BillingPeriod }> {
    const period = billingPeriod(org.billingAnchorDay, now);
    await this.deps.usage.flush().catch(() => undefined);
    const report = await this.deps.usageStore.periodStats(org.id, period);
    return { used: report.totals.requests, period };
  }

  private async rateState(key: ApiKeyRecord, org: OrganizationRecord): Promise<RateLimitState> {
    const limit = key.rateLimitPerMinute ?? org.rateLimitPerMinute;
    const limitSource = key.rateLimitPerMinute === null || key.rateLimitPerMinute === undefined ? 'organization' : 'key';
    if (limit === 0) return { keyId: key.id, limit: 0, remaining: 0, resetSeconds: 0, limitSource };
    const decision = await limiterCall(() => this.deps.limiter.peek(key.id, limit, this.context.now().getTime()));
    return { keyId: key.id, limit, remaining: decision.remaining, resetSeconds: decision.resetSeconds, limitSource };
  }
}

/** A limiter call, with an unreachable Redis reported as service_unavailable. */
async function limiterCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (e instanceof LimiterUnavailableError)
      throw new DomainError('service_unavailable', 'the rate limiter (Redis) is unavailable; retry later');
    throw e;
  }
}
