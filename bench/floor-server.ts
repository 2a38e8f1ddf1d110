/**
 * The floor: the least an API-key ext_authz server on @grpc/grpc-js must do per Check
 * under keyward's contract, built from keyward's own pieces, and nothing more:
 *  - read the request's headers from its bytes (src/grpc/check-codec.ts, keyward's decoder);
 *  - find the credential header and compute its keyed hash (HMAC-SHA256 with a server
 *    secret, src/keys/hash.ts: keys are stored only as that hash);
 *  - look the hash up in a Map;
 *  - answer with the allow response keyward sends for a cached key (the identity
 *    headers upstream, the credential stripped, the rate-limit headers), as bytes
 *    captured from keyward itself; anything else gets a fixed deny.
 * No limiter, quota, usage, last-used, scopes, expiry or logging. bench/run.ts drives
 * it beside keyward and the no-op: the no-op measures grpc-js, the floor measures
 * grpc-js plus the work that no implementation of the contract can skip.
 *
 * Reads FLOOR_FILE: JSON { keys: string[], allowBase64: string } (the bench's keys and
 * keyward's allow response). Listens on 127.0.0.1:0 and prints `floor listening on 127.0.0.1:<port>`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { handleUnaryCall } from '@grpc/grpc-js';
import { serveCheck } from './support/check-server';
import { decodeCheckAttributes } from '../src/grpc/check-codec';
import { CheckResponse } from '../src/gen/envoy/service/auth/v3/external_auth';
import { createHasher } from '../src/keys/hash';

const spec = JSON.parse(readFileSync(process.env.FLOOR_FILE!, 'utf8')) as { keys: string[]; allowBase64: string };
const hasher = createHasher(randomBytes(32));
const allow = Buffer.from(spec.allowBase64, 'base64');
const known = new Map<string, Buffer>(spec.keys.map((k) => [hasher.digest(k), allow]));
const DENY = Buffer.from(
  CheckResponse.encode({
    status: { code: 16, message: '', details: [] },
    deniedResponse: undefined,
    okResponse: undefined,
    dynamicMetadata: undefined,
  }).finish(),
);

const check: handleUnaryCall<Buffer, Buffer> = (call, callback) => {
  let key: string | undefined;
  for (const [name, value] of decodeCheckAttributes(call.request).headers) if (name === 'x-api-key') key = value;
  callback(null, (key !== undefined && known.get(hasher.digest(key))) || DENY);
};

serveCheck('floor', check);
