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
import {
  decide,
  decideLimits,
  effectiveRateLimit,
  keyToLookUp,
  type Decision,
  type KeyLookup,
  type KeyView,
  type OrgView,
} from './decision';
import { LimiterUnavailableError, type QuotaCounter, type QuotaDecision, type RateDecision, type RateLimiter } from '../limits/types';
import type { UsageEvent } from '../usage/types';
import { normalizePath } from './routes';
import type { LastUsedRecorder } from './last-used';
import { attributesOf, readAttributes, type CheckRequestInput, type RequestReaderOptions } from './request';
import type { RequestAttributes } from '../grpc/check-codec';
import { toCheckResponse, type ResponseOptions } from './response';

const NO_HEADERS: readonly string[] = [];

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
  /**
   * Called once per answered Check with its outcome code (`ok` or the denial's error
   * code) and its duration in seconds, from the decoded request to the response
   * (metrics). Must not throw.
   */
  observe?: (code: string, seconds: number) => void;
  /** Which decisions are logged at info (KEYWARD_CHECK_LOG, KEYWARD_CHECK_LOG_SAMPLE); default none. */
  decisionLog?: { mode: 'off' | 'denied' | 'all'; sample: number; random?: () => number };
}

export class Authorizer {
  constructor(private readonly d: AuthorizerDeps) {}

  check(req: CheckRequest): Promise<CheckResponse> {
    try {
      return Promise.resolve(this.checkAttributes(attributesOf(req)));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * The Check on attributes read from the request bytes (wire.ts) or a decoded
   * request. Synchronous when nothing needs I/O (a cached key, the in-memory
   * limiter and quota), so the hot path creates no promise; a Promise otherwise.
   * Throws (or rejects) only for infrastructure failures in `error` mode.
   */
  checkAttributes(attributes: RequestAttributes): CheckResponse | Promise<CheckResponse> {
    const started = performance.now();
    const input = readAttributes(attributes, this.d.reader);
    const keyText = keyToLookUp(input);
    if (keyText === undefined) return this.decideAndRespond(input, undefined, started);
    // keyText is only used on a miss while the hash secret is rotated (cache.ts).
    const found = this.d.cache.lookup(this.d.hasher.digest(keyText), this.d.clock.now().getTime(), keyText);
    return found instanceof Promise
      ? found.then((l) => this.decideAndRespond(input, l, started))
      : this.decideAndRespond(input, found, started);
  }

  private decideAndRespond(
    input: CheckRequestInput,
    lookup: KeyLookup | undefined,
    started: number,
  ): CheckResponse | Promise<CheckResponse> {
    if (lookup?.kind === 'unavailable' && this.d.onStoreError === 'error') {
      this.d.observe?.('store_unavailable', (performance.now() - started) / 1000);
      throw new StoreUnavailableError();
    }
    const now = this.d.clock.now().getTime();
    const decision: Decision = decide(input, lookup, now);
    if (!decision.allow || !decision.key) return this.respond(input, decision, started);
    // Step 8: spend only now that every other check has passed.
    const spent = this.spend(decision.key, decision.org, now);
    return spent instanceof Promise
      ? spent.then((d) => this.respond(input, this.recorded(input, d, now), started))
      : this.respond(input, this.recorded(input, spent, now), started);
  }

  /** Records last use and usage of an allowed Check. */
  private recorded(input: CheckRequestInput, decision: Decision, now: number): Decision {
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
    return decision;
  }

  private respond(input: CheckRequestInput, decision: Decision, started: number): CheckResponse {
    const code = decision.allow ? 'ok' : decision.code;
    const seconds = (performance.now() - started) / 1000;
    this.d.observe?.(code, seconds);
    const log = this.d.decisionLog;
    const logged =
      log !== undefined &&
      (log.mode === 'all' || (log.mode === 'denied' && !decision.allow)) &&
      (log.sample >= 1 || (log.random ?? Math.random)() < log.sample);
    if (logged || this.d.logger.isLevelEnabled('debug')) {
      const fields = {
        requestId: input.requestId,
        code,
        keyId: decision.key?.id,
        orgId: decision.key?.organizationId,
        route: input.route,
        ms: Math.round(seconds * 1e6) / 1000,
      };
      if (logged) this.d.logger.info(fields, 'check');
      else this.d.logger.debug(fields, 'check');
    }
    const credentialHeaders = input.credential.kind === 'missing' ? NO_HEADERS : input.credential.headers;
    return toCheckResponse(decision, { credentialHeaders, spoofed: input.spoofed }, this.d.response);
  }

  /**
   * Rate limit, then quota (refunding the rate limit if the quota denies or fails).
   * Synchronous with the in-memory limiter and quota; a Promise when one of them
   * answers with one (Redis, a database sync).
   */
  private spend(key: KeyView, org: OrgView, now: number): Decision | Promise<Decision> {
    const limit = effectiveRateLimit(key, org);
    if (limit <= 0) return this.spendQuota(key, org, null, now);
    let r: RateDecision | Promise<RateDecision>;
    try {
      r = this.d.limiter.consume(key.id, limit, now);
    } catch (e) {
      return this.limiterFailure(key, e);
    }
    if (r instanceof Promise)
      return r.then(
        (rate) => this.spendQuota(key, org, rate, now),
        (e: unknown) => this.limiterFailure(key, e),
      );
    return this.spendQuota(key, org, r, now);
  }

  private spendQuota(key: KeyView, org: OrgView, rate: RateDecision | null, now: number): Decision | Promise<Decision> {
    if ((rate && !rate.allowed) || org.monthlyQuota <= 0) return decideLimits(key, org, rate, null, now);
    // A denied or failed quota gives the rate-limit request back first.
    const refundThen = (next: () => Decision): Decision | Promise<Decision> => {
      if (!rate) return next();
      let f: void | Promise<void>;
      try {
        f = this.d.limiter.refund(key.id, now);
      } catch (e) {
        return this.limiterFailure(key, e);
      }
      return f instanceof Promise ? f.then(next, (e: unknown) => this.limiterFailure(key, e)) : next();
    };
    const failed = (e: unknown): Decision | Promise<Decision> => refundThen(() => this.limiterFailure(key, e));
    const decided = (quota: QuotaDecision): Decision | Promise<Decision> =>
      quota.allowed ? decideLimits(key, org, rate, quota, now) : refundThen(() => decideLimits(key, org, rate, quota, now));
    let q: QuotaDecision | Promise<QuotaDecision>;
    try {
      q = this.d.quota.consume({ id: org.id, monthlyQuota: org.monthlyQuota, billingAnchorDay: org.billingAnchorDay }, now);
    } catch (e) {
      return failed(e);
    }
    return q instanceof Promise ? q.then(decided, failed) : decided(q);
  }

  /** A limiter that cannot answer: a 503 denial, or an error in `error` mode; anything else is rethrown. */
  private limiterFailure(key: KeyView, e: unknown): Decision {
    if (e instanceof LimiterUnavailableError) {
      if (this.d.onStoreError === 'error') throw new StoreUnavailableError(e);
      return { allow: false, code: 'service_unavailable', key };
    }
    throw e;
  }
}
