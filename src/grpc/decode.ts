/**
 * Requests that cannot be decoded (for example a 64-bit integer beyond 2^53-1, which
 * the generated code refuses) become a clear INVALID_ARGUMENT with code
 * `invalid_argument` and field `request`, instead of grpc-js's bare INTERNAL.
 *
 * safeDefinition wraps each method's deserializer; a request that fails to decode
 * reaches the handler as an UndecodableRequest, which `decoded()` turns into the
 * domain error.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { InvalidArgumentError } from '../errors/domain';

export class UndecodableRequest {
  constructor(readonly reason: string) {}
}

export function safeDefinition<T extends ServiceDefinition>(def: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(def)) {
    const deserialize = method.requestDeserialize;
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return deserialize(bytes);
        } catch (e) {
          const msg = e instanceof Error ? e.message : '';
          return new UndecodableRequest(
            /MAX_SAFE_INTEGER/.test(msg) ? 'an integer field is larger than 2^53-1' : 'the message is not valid protobuf for this method',
          );
        }
      },
    };
  }
  return out as T;
}

/** Returns the request, or throws invalid_argument if it could not be decoded. */
export function decoded<T>(req: T | UndecodableRequest): T {
  if (req instanceof UndecodableRequest) throw new InvalidArgumentError('request', req.reason, 'undecodable');
  return req;
}
