/**
 * Metrics and the decision log around the Authorizer, at the gRPC edge (as unary() is
 * for KeyAdmin): each Check's outcome code and duration, and its log line.
 */
import type { Logger } from 'pino';
import type { CheckResponse } from '../gen/envoy/service/auth/v3/external_auth';
import type { CheckResult } from '../authz/service';
import { StoreUnavailableError } from '../errors/domain';
import { attempt, type MaybePromise } from '../util/maybe-async';
import type { RequestAttributes } from './check-codec';
import type { SpanHandle, Tracing } from '../observability/tracing';

/** Which decisions are logged at info (KEYWARD_CHECK_LOG, KEYWARD_CHECK_LOG_SAMPLE). */
export interface DecisionLogOptions {
  mode: 'off' | 'denied' | 'all';
  /** The fraction of those that is logged, 0–1. */
  sample: number;
  /** The sampling source (tests); default Math.random. */
  random?: () => number;
}

export interface CheckObserverOptions {
  logger: Logger;
  /**
   * Told once per Check its outcome code (`ok`, the denial's error code, or
   * `store_unavailable` when it failed with StoreUnavailableError in `error` mode) and
   * its duration in seconds, from the decoded request to the response. Must not throw.
   */
  observe?: (code: string, seconds: number) => void;
  /** Default: none at info. Every answered Check is logged at debug when debug is enabled. */
  decisionLog?: DecisionLogOptions;
  /**
   * When tracing is on (src/observability/tracing.ts): one span per Check, child of its
   * `traceparent`, with keyward.decision.code, keyward.key.id, keyward.organization.id
   * and keyward.route. Undefined: no tracing work at all.
   */
  tracing?: Tracing;
}

/** A Check from decoded attributes to its response; synchronous on the hot path. */
export type CheckHandler = (attributes: RequestAttributes) => MaybePromise<CheckResponse>;

/**
 * Wraps `authorize` (Authorizer.authorize) with metrics and the decision log. The log
 * line `check` has requestId, code, keyId, orgId, route and ms, never the credential.
 */
export function observedCheck(
  authorize: (attributes: RequestAttributes) => MaybePromise<CheckResult>,
  options: CheckObserverOptions,
): CheckHandler {
  const { logger, observe, decisionLog, tracing } = options;

  const answered = (result: CheckResult, started: number, span?: SpanHandle): CheckResponse => {
    const { input, decision } = result;
    const code = decision.allow ? 'ok' : decision.code;
    const seconds = (performance.now() - started) / 1000;
    observe?.(code, seconds);
    span?.end({
      'keyward.decision.code': code,
      'keyward.key.id': decision.key?.id,
      'keyward.organization.id': decision.key?.organizationId,
      'keyward.route': input.route,
    });
    const logged =
      decisionLog !== undefined &&
      (decisionLog.mode === 'all' || (decisionLog.mode === 'denied' && !decision.allow)) &&
      (decisionLog.sample >= 1 || (decisionLog.random ?? Math.random)() < decisionLog.sample);
    if (logged || logger.isLevelEnabled('debug')) {
      const fields = {
        requestId: input.requestId,
        code,
        keyId: decision.key?.id,
        orgId: decision.key?.organizationId,
        route: input.route,
        ms: Math.round(seconds * 1e6) / 1000,
      };
      if (logged) logger.info(fields, 'check');
      else logger.debug(fields, 'check');
    }
    return result.response;
  };

  const failed = (error: unknown, started: number, span?: SpanHandle): never => {
    const unavailable = error instanceof StoreUnavailableError;
    if (unavailable) observe?.('store_unavailable', (performance.now() - started) / 1000);
    span?.end({ 'keyward.decision.code': unavailable ? 'store_unavailable' : 'internal' }, true);
    throw error;
  };

  if (tracing === undefined) {
    // The hot path: no closure per Check while the answer is synchronous.
    return (attributes) => {
      const started = performance.now();
      let result: MaybePromise<CheckResult>;
      try {
        result = authorize(attributes);
      } catch (error) {
        return failed(error, started);
      }
      if (result instanceof Promise) {
        return result.then(
          (r) => answered(r, started),
          (error: unknown) => failed(error, started),
        );
      }
      return answered(result, started);
    };
  }
  return (attributes) => {
    const started = performance.now();
    const span = tracing.startCheck(attributes.headers);
    return attempt(
      () => authorize(attributes),
      (result) => answered(result, started, span),
      (error) => failed(error, started, span),
    );
  };
}
