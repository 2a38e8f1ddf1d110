/**
 * A no-op ext_authz server: answers every Check with the same OK CheckResponse
 * (status code 0, empty ok_response) without decoding the request. It is the
 * baseline for the benchmark: the cost of @grpc/grpc-js itself on this machine.
 * Listens on 127.0.0.1:0 and prints `noop listening on 127.0.0.1:<port>`.
 */
import { Server, ServerCredentials, type ServiceDefinition, type handleUnaryCall } from '@grpc/grpc-js';
import { CheckResponse } from '../src/gen/envoy/service/auth/v3/external_auth';

const OK = Buffer.from(CheckResponse.encode({ status: { code: 0, message: '', details: [] }, okResponse: {
  headers: [], headersToRemove: [], dynamicMetadata: undefined, responseHeadersToAdd: [], queryParametersToSet: [], queryParametersToRemove: [],
}, dynamicMetadata: undefined }).finish());

const identity = (b: Buffer): Buffer => b;
const definition: ServiceDefinition = {
  Check: {
    path: '/envoy.service.auth.v3.Authorization/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};
const check: handleUnaryCall<Buffer, Buffer> = (_call, callback) => callback(null, OK);

const server = new Server();
server.addService(definition, { Check: check });
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(`noop: ${err.message}`);
    process.exit(1);
  }
  console.log(`noop listening on 127.0.0.1:${port}`);
});
const stop = () => server.tryShutdown(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
