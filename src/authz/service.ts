/**
 * The Check: reads the request, looks the key up (cache first), decides purely,
 * records last use, and builds the response. Only infrastructure failures throw —
 * and only with KEYWARD_ON_STORE_ERROR=error; by default a store failure for an
 * uncached key is a 503 denial. A denial is a value.
 */
import type { Logger } from 'pino';
import type { CheckRequest, CheckResponse } from '../gen/envoy/service/auth/v3/external_auth';
import type { CredentialHasher } from '../keys/hash';
import type { Clock } from '../util/clock';
import { StoreUnavailableError } from '../errors/domain';
import type { KeyCache } from './cache';
import { decide, decideLimits, effectiveRateLimit, keyToLookUp, type Decision, type KeyLookup, type KeyView, type OrgView } from './decision';
import { LimiterUnavailableError, type QuotaCounter, type QuotaDecision, type RateDecision, type RateLimiter } from '../limits/types';
import type { UsageEvent } from '../usage/types';
import { normalizePath } from './routes';
import type { LastUsedRecorder } from './last-used';
import { attributesOf, readAttributes, type RequestReaderOptions } from './request';
import type { RequestAttributes } from './wire';
import { toCheckResponse, type ResponseOptions } from './response';

export interface AuthorizerDeps {
  cache: KeyCache;
  hasher: CredentialHasher;
  clock: Clock;
  logger: Logger;
  lastUsed: LastUsedRecorder;
  reader: RequestReaderOptions;
  response: ResponseOptions;
  onStoreError: 'deny' | 'error';
  limiter: RateLimiter;
  quota: QuotaCounter;
  /** Receives one `requests: 1` event per allowed Check that had a key. */
  usage: { record(e: UsageEvent): void };
}

export class Authorizer {
  constructor(private readonly d: AuthorizerDeps) {}

  check(req: CheckRequest): Promise<CheckResponse> {
    return this.checkAttributes(attributesOf(req));
  }

  /** The Check on attributes read from the request bytes (wire.ts) or a decoded request. */
  async checkAttributes(attributes: RequestAttributes): Promise<CheckResponse> {
    const input = readAttributes(attributes, this.d.reader);
    const keyText = keyToLookUp(input);
    let lookup: KeyLookup | undefined;
    if (keyText !== undefined) {
      const found = this.d.cache.lookup(this.d.hasher.hash(keyText), this.d.clock.now().getTime());
      lookup = found instanceof Promise ? await found : found;
      if (lookup.kind === 'unavailable' && this.d.onStoreError === 'error') throw new StoreUnavailableError();
    }
    const now = this.d.clock.now().getTime();
    let decision: Decision = decide(input, lookup, now);
    if (decision.allow && decision.key) {
      // Step 8: spend only now that every other check has passed.
      decision = await this.spend(decision.key, decision.org, now);
      if (decision.allow && decision.key) {
        this.d.lastUsed.record(decision.key.id, now);
        this.d.usage.record({
          at: now,
          organizationId: decision.key.organizationId,
          keyId: decision.key.id,
          ...(input.requestId && { requestId: input.requestId }),
          endpoint: normalizePath(input.path),
          method: input.method || 'UNKNOWN',
          requests: 1,
          source: 'check',
        });
      }
    }
    if (this.d.logger.isLevelEnabled('debug')) {
      this.d.logger.debug(
        {
          requestId: input.requestId,
          outcome: decision.allow ? 'allow' : decision.code,
          keyId: decision.key?.id,
          orgId: decision.key?.organizationId,
          route: input.route,
        },
        'check',
      );
    }
    const credentialHeaders = input.credential.kind === 'missing' ? [] : input.credential.headers;
    return toCheckResponse(decision, { credentialHeaders, spoofed: input.spoofed }, this.d.response);
  }

  /** Rate limit, then quota (refunding the rate limit if the quota denies). */
  private async spend(key: KeyView, org: OrgView, now: number): Promise<Decision> {
    try {
      const limit = effectiveRateLimit(key, org);
      let rate: RateDecision | null = null;
      if (limit > 0) {
        const r = this.d.limiter.consume(key.id, limit, now);
        rate = r instanceof Promise ? await r : r;
        if (!rate.allowed) return decideLimits(key, org, rate, null, now);
      }
      let quota: QuotaDecision | null = null;
      if (org.monthlyQuota > 0) {
        try {
          const q = this.d.quota.consume({ id: org.id, monthlyQuota: org.monthlyQuota, billingAnchorDay: org.billingAnchorDay }, now);
          quota = q instanceof Promise ? await q : q;
        } catch (e) {
          if (rate) await this.d.limiter.refund(key.id, now);
          throw e;
        }
        if (!quota.allowed && rate) await this.d.limiter.refund(key.id, now);
      }
      return decideLimits(key, org, rate, quota, now);
    } catch (e) {
      if (e instanceof LimiterUnavailableError) {
        if (this.d.onStoreError === 'error') throw new StoreUnavailableError(e);
        return { allow: false, code: 'service_unavailable', key };
      }
      throw e;
    }
  }
}
