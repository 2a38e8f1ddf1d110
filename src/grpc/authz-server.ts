/**
 * envoy.service.auth.v3.Authorization on the authz port. A denial is a normal
 * response (status set, denied_response filled); only an infrastructure failure in
 * `error` mode becomes a gRPC error, so Envoy's failure_mode_allow and
 * status_on_error decide.
 */
import type { sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Authorizer } from '../authz/service';
import { AuthorizationService, type AuthorizationServer, type CheckRequest, type CheckResponse } from '../gen/envoy/service/auth/v3/external_auth';
import { describeError } from '../util/logger';
import { toServiceError, toWireError } from './errors';
import { decoded, safeDefinition } from './decode';

export function authorizationImplementation(authorizer: Authorizer, logger: Logger): AuthorizationServer {
  const fail = (callback: sendUnaryData<CheckResponse>, err: unknown) => {
    if (toWireError(err).code === 'internal') logger.error({ err: describeError(err) }, 'check failed');
    callback(toServiceError(err));
  };
  return {
    check(call: ServerUnaryCall<CheckRequest, CheckResponse>, callback: sendUnaryData<CheckResponse>): void {
      let req: CheckRequest;
      try {
        req = decoded(call.request);
      } catch (e) {
        fail(callback, e);
        return;
      }
      authorizer.check(req).then(
        (res) => callback(null, res),
        (err: unknown) => fail(callback, err),
      );
    },
  };
}

/** The Authorization service definition, with undecodable requests turned into invalid_argument. */
export const SafeAuthorizationService = safeDefinition(AuthorizationService);
