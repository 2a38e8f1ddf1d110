/**
 * envoy.service.auth.v3.Authorization on the authz port. A denial is a normal
 * response (status set, denied_response filled); only an infrastructure failure in
 * `error` mode becomes a gRPC error, so Envoy's failure_mode_allow and
 * status_on_error decide.
 *
 * The Check method is served with the hand-coded codec (check-codec.ts,
 * check-response-encoder.ts): the request bytes are read straight into the decision's
 * attributes and the response is written without the generic writer. Bytes that are
 * not a CheckRequest become INVALID_ARGUMENT (invalid_argument, field `request`), as
 * with every other method; metadata beyond the limit becomes RESOURCE_EXHAUSTED
 * (metadata_too_large).
 */
import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Authorizer } from '../authz/service';
import { AuthorizationService, CheckRequest, type CheckResponse } from '../gen/envoy/service/auth/v3/external_auth';
import { describeError } from '../util/logger';
import type { MaybePromise } from '../util/maybe-async';
import { CheckDecodeError, decodeCheckAttributes, type RequestAttributes } from './check-codec';
import { observedCheck, type CheckObserverOptions } from './check-observer';
import { encodeCheckResponse } from './check-response-encoder';
import { toServiceError, toWireStatus } from '../errors/wire';
import { decoded, UndecodableRequest } from './decode';
import { checkMetadataSize } from './metadata-limit';

/** The Check handler: `options` carries the logger, metrics and the decision log (check-observer.ts). */
export function authorizationImplementation(authorizer: Authorizer, options: CheckObserverOptions): UntypedServiceImplementation {
  const { logger } = options;
  const check = observedCheck((attributes) => authorizer.authorize(attributes), options);
  const fail = (callback: sendUnaryData<CheckResponse>, err: unknown) => {
    if (toWireStatus(err).code === 'internal') logger.error({ err: describeError(err) }, 'check failed');
    callback(toServiceError(err));
  };
  return {
    check(call: ServerUnaryCall<RequestAttributes | UndecodableRequest, CheckResponse>, callback: sendUnaryData<CheckResponse>): void {
      // No closure per Check while the answer is synchronous (a cached key).
      let response: MaybePromise<CheckResponse>;
      try {
        checkMetadataSize(call.metadata);
        response = check(decoded(call.request));
      } catch (err) {
        fail(callback, err);
        return;
      }
      if (response instanceof Promise) {
        void response.then(
          (r) => callback(null, r),
          (err: unknown) => fail(callback, err),
        );
      } else callback(null, response);
    },
  };
}

function readRequest(bytes: Buffer): RequestAttributes | UndecodableRequest {
  try {
    return decodeCheckAttributes(bytes);
  } catch (e) {
    if (!(e instanceof CheckDecodeError)) throw e;
    return new UndecodableRequest(e.reason === 'integer_too_large' ? 'integer_too_large' : 'not_protobuf');
  }
}

/** The Authorization service definition served by keyward (server side only). */
export const SafeAuthorizationService = {
  check: {
    ...AuthorizationService.check,
    requestSerialize: (value: CheckRequest): Buffer => Buffer.from(CheckRequest.encode(value).finish()),
    requestDeserialize: readRequest,
    responseSerialize: encodeCheckResponse,
  },
} as const;
