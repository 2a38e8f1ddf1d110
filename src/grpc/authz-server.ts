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
import { describe } from './admin-server';
import { toServiceError, toWireError } from './errors';

export function authorizationImplementation(authorizer: Authorizer, logger: Logger): AuthorizationServer {
  return {
    check(call: ServerUnaryCall<CheckRequest, CheckResponse>, callback: sendUnaryData<CheckResponse>): void {
      authorizer.check(call.request).then(
        (res) => callback(null, res),
        (err: unknown) => {
          if (toWireError(err).code === 'internal') logger.error({ err: describe(err) }, 'check failed');
          callback(toServiceError(err));
        },
      );
    },
  };
}

export { AuthorizationService };
