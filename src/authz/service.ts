/**
 * The Check, orchestrated: read the request (its key parsed once), look the key up
 * (cache first), decide purely, spend step 8, record the use, build the response.
 * Metrics and the decision log wrap it at the gRPC edge (src/grpc/check-observer.ts).
 */
import type { CheckResponse } from '../gen/envoy/service/auth/v3/external_auth';
import type { RequestAttributes } from '../grpc/check-codec';
import type { CredentialHasher } from '../keys/hash';
import { endpointLabel } from '../usage/endpoint';
import type { UsageEvent } from '../usage/types';
import { epochMs, type Clock } from '../util/clock';
import type { MaybePromise } from '../util/maybe-async';
import { StoreUnavailableError } from '../errors/domain';
import type { KeyCache } from './cache';
import { decide, type Decision, type KeyLookup } from './decision';
import type { LastUsedRecorder } from './last-used';
import { readAttributes, type CheckRequestInput, type RequestReaderOptions } from './request';
import { toCheckResponse, type ResponseOptions } from './response';
import type { LimitSpender } from './spend';
import type { ObservedRequest } from '../events/observe';

const NO_HEADERS: readonly string[] = [];

export interface AuthorizerDeps {
  cache: KeyCache;
  hasher: CredentialHasher;
  clock: Clock;
  lastUsed: LastUsedRecorder;
  reader: RequestReaderOptions;
  response: ResponseOptions;
  /** KEYWARD_ON_STORE_ERROR: `error` makes a failed lookup of an uncached key throw instead of a 503 denial. */
  onStoreError: 'deny' | 'error';
  /** Step 8: rate limit and quota. */
  spender: LimitSpender;
  /** Receives one `requests: 1` event per allowed Check that had a key. */
  usage: { record(event: UsageEvent): void };
  /** Sees every decision with a key, for security events (src/events/observe.ts). */
  security?: { observe(request: ObservedRequest, decision: Decision, nowMs: number): void };
}

/** One answered Check: what was asked, what was decided, and the response. */
export interface CheckResult {
  input: CheckRequestInput;
  decision: Decision;
  response: CheckResponse;
}

export class Authorizer {
  constructor(private readonly deps: AuthorizerDeps) {}

  /**
   * The Check on a request's attributes. A denial is a value; only an infrastructure
   * failure in `error` mode throws (or rejects) StoreUnavailableError. Synchronous when
   * nothing needs I/O (a cached key, the in-memory limiter and quota), so the hot path
   * creates no promise.
   */
  authorize(attributes: RequestAttributes): MaybePromise<CheckResult> {
    const input = readAttributes(attributes, this.deps.reader);
    const keyText = input.wellFormedKey;
    const now = epochMs(this.deps.clock);
    if (keyText === undefined) return this.decideAndSpend(input, undefined, now);
    // keyText is only used on a miss while the hash secret is rotated (cache.ts).
    const found = this.deps.cache.lookup(this.deps.hasher.digest(keyText), now, keyText);
    // No closure per Check while every step answers synchronously; after a lookup that waited, the time is read again.
    if (found instanceof Promise) return found.then((lookup) => this.decideAndSpend(input, lookup, epochMs(this.deps.clock)));
    return this.decideAndSpend(input, found, now);
  }

  private decideAndSpend(input: CheckRequestInput, lookup: KeyLookup | undefined, now: number): MaybePromise<CheckResult> {
    if (lookup?.kind === 'unavailable' && this.deps.onStoreError === 'error') throw new StoreUnavailableError();
    const decision = decide(input, lookup, now);
    if (!decision.allow || !decision.key) {
      if (decision.key) this.deps.security?.observe(input, decision, now);
      return this.respond(input, decision);
    }
    // Step 8: spend only now that every other check has passed.
    const spent = this.deps.spender.spend(decision.key, decision.org, now);
    if (spent instanceof Promise) return spent.then((d) => this.answerSpent(input, d, now));
    return this.answerSpent(input, spent, now);
  }

  private answerSpent(input: CheckRequestInput, spent: Decision, now: number): CheckResult {
    if (spent.key) this.deps.security?.observe(input, spent, now);
    const endpoint = this.record(input, spent, now);
    return this.respond(input, spent, endpoint);
  }

  /** Records last use and usage of an allowed Check; returns the endpoint label it was counted under. */
  private record(input: CheckRequestInput, decision: Decision, now: number): string | undefined {
    if (!decision.allow || !decision.key) return undefined;
    this.deps.lastUsed.record(decision.key.id, now);
    const endpoint = endpointLabel({ path: input.path, routeTemplate: input.routeTemplate, extensionEndpoint: input.extensionEndpoint });
    this.deps.usage.record({
      at: now,
      organizationId: decision.key.organizationId,
      keyId: decision.key.id,
      endpoint,
      method: input.method || 'UNKNOWN',
      requests: 1,
      source: 'check',
    });
    return endpoint;
  }

  private respond(input: CheckRequestInput, decision: Decision, endpoint?: string): CheckResult {
    const credentialHeaders = input.credential.kind === 'missing' ? NO_HEADERS : input.credential.headers;
    const response = toCheckResponse(decision, { credentialHeaders, spoofed: input.spoofed, endpoint }, this.deps.response);
    return { input, decision, response };
  }
}
