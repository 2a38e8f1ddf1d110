/**
 * envoy.service.auth.v3.Authorization on the authz port. A denial is a normal
 * response (status set, denied_response filled); only an infrastructure failure in
 * `error` mode becomes a gRPC error, so Envoy's failure_mode_allow and
 * status_on_error decide.
 *
 * The Check method is served with the hand-coded codec of src/grpc/check-codec.ts: the
 * request bytes are read straight into the decision's attributes and the response
 * is written without the generic writer. Bytes that are not a CheckRequest become
 * INVALID_ARGUMENT (invalid_argument, field `request`), as with every other method;
 * metadata beyond the limit becomes RESOURCE_EXHAUSTED (metadata_too_large).
 */
import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Authorizer } from '../authz/service';
import { AuthorizationService, CheckRequest, type CheckResponse } from '../gen/envoy/service/auth/v3/external_auth';
import { decodeCheckAttributes, encodeCheckResponse, WireError, type RequestAttributes } from './check-codec';
import { describeError } from '../util/logger';
import { toServiceError, toWireError } from './errors';
import { decoded, UndecodableRequest } from './decode';
import { checkMetadataSize } from './metadata-limit';

export function authorizationImplementation(authorizer: Authorizer, logger: Logger): UntypedServiceImplementation {
  const fail = (callback: sendUnaryData<CheckResponse>, err: unknown) => {
    if (toWireError(err).code === 'internal') logger.error({ err: describeError(err) }, 'check failed');
    callback(toServiceError(err));
  };
  return {
    check(call: ServerUnaryCall<RequestAttributes | UndecodableRequest, CheckResponse>, callback: sendUnaryData<CheckResponse>): void {
      let attributes: RequestAttributes;
      try {
        checkMetadataSize(call.metadata);
        attributes = decoded(call.request);
      } catch (e) {
        fail(callback, e);
        return;
      }
      let res: CheckResponse | Promise<CheckResponse>;
      try {
        res = authorizer.checkAttributes(attributes);
      } catch (e) {
        fail(callback, e);
        return;
      }
      if (res instanceof Promise) {
        res.then(
          (r) => callback(null, r),
          (err: unknown) => fail(callback, err),
        );
      } else callback(null, res);
    },
  };
}

function readRequest(bytes: Buffer): RequestAttributes | UndecodableRequest {
  try {
    return decodeCheckAttributes(bytes);
  } catch (e) {
    if (!(e instanceof WireError)) throw e;
    return new UndecodableRequest(
      /2\^53/.test(e.message) ? 'an integer field is larger than 2^53-1' : 'the message is not valid protobuf for this method',
    );
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
