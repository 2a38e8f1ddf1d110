/**
 * A bare grpc-js Authorization server for the baselines (bench/noop-server.ts,
 * bench/floor-server.ts): Check with identity (de)serializers, so the handler sees and
 * returns raw protobuf bytes, with keyward's own server options (channelz off:
 * src/grpc/server-options.ts), so that the comparison is like for like. Listens on 127.0.0.1:0, prints `<name> listening on
 * 127.0.0.1:<port>`, and shuts down on SIGTERM or SIGINT.
 */
import { Server, ServerCredentials, type ServiceDefinition, type handleUnaryCall } from '@grpc/grpc-js';
import { GRPC_SERVER_OPTIONS } from '../../src/grpc/server-options';

const identity = (b: Buffer): Buffer => b;

export function serveCheck(name: string, check: handleUnaryCall<Buffer, Buffer>): void {
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
  const server = new Server(GRPC_SERVER_OPTIONS);
  server.addService(definition, { Check: check });
  server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      console.error(`${name}: ${err.message}`);
      process.exit(1);
    }
    console.log(`${name} listening on 127.0.0.1:${port}`);
  });
  const stop = () => server.tryShutdown(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
