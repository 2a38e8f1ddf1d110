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
import { decide, keyToLookUp, type Decision, type KeyLookup } from './decision';
import type { LastUsedRecorder } from './last-used';
import { readCheckRequest, type RequestReaderOptions } from './request';
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
}

export class Authorizer {
  constructor(private readonly d: AuthorizerDeps) {}

  async check(req: CheckRequest): Promise<CheckResponse> {
    const input = readCheckRequest(req, this.d.reader);
    const keyText = keyToLookUp(input);
    let lookup: KeyLookup | undefined;
    if (keyText !== undefined) {
      const found = this.d.cache.lookup(this.d.hasher.hash(keyText), this.d.clock.now().getTime());
      lookup = found instanceof Promise ? await found : found;
      if (lookup.kind === 'unavailable' && this.d.onStoreError === 'error') throw new StoreUnavailableError();
    }
    const now = this.d.clock.now().getTime();
    const decision: Decision = decide(input, lookup, now);
    // Step 8, rate limit and monthly quota, goes here: applied to allow decisions only.
    if (decision.allow && decision.key) this.d.lastUsed.record(decision.key.id, now);
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
}
