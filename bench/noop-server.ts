/**
 * A no-op ext_authz server: answers every Check with the same OK CheckResponse
 * (status code 0, empty ok_response) without decoding the request. It is the
 * baseline for the benchmark: the cost of @grpc/grpc-js itself on this machine.
 * Listens on 127.0.0.1:0 and prints `noop listening on 127.0.0.1:<port>`.
 */
import type { handleUnaryCall } from '@grpc/grpc-js';
import { serveCheck } from './support/check-server';
import { CheckResponse } from '../src/gen/envoy/service/auth/v3/external_auth';

const OK = Buffer.from(
  CheckResponse.encode({
    status: { code: 0, message: '', details: [] },
    okResponse: {
      headers: [],
      headersToRemove: [],
      dynamicMetadata: undefined,
      responseHeadersToAdd: [],
      queryParametersToSet: [],
      queryParametersToRemove: [],
    },
    dynamicMetadata: undefined,
  }).finish(),
);

const check: handleUnaryCall<Buffer, Buffer> = (_call, callback) => callback(null, OK);

serveCheck('noop', check);
