/**
 * The request every benchmark sends: a CheckRequest shaped like Envoy's (GET /v1/x on
 * api.example.com from 10.0.0.1), carrying the API key in x-api-key.
 */
import { CheckRequest } from '../../src/gen/envoy/service/auth/v3/external_auth';

/** The CheckRequest's protobuf bytes for `apiKey`. */
export function checkRequestBytes(apiKey: string): Buffer {
  const headers = { ':method': 'GET', ':path': '/v1/x', ':authority': 'api.example.com', 'x-api-key': apiKey };
  return Buffer.from(
    CheckRequest.encode(
      CheckRequest.fromPartial({
        attributes: {
          source: { address: { socketAddress: { address: '10.0.0.1', portValue: 44321 } } },
          request: {
            http: { id: '1', method: 'GET', path: '/v1/x', host: 'api.example.com', scheme: 'https', protocol: 'HTTP/1.1', headers },
          },
        },
      }),
    ).finish(),
  );
}

/** A gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length, payload. */
export function grpcFrame(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}
