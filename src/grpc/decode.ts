/**
 * Requests that cannot be decoded (for example a 64-bit integer beyond 2^53-1, which
 * the generated code refuses) become a clear INVALID_ARGUMENT with code
 * `invalid_argument` and field `request`, instead of grpc-js's bare INTERNAL.
 *
 * A method's deserializer returns an UndecodableRequest instead of throwing (safeDefinition
 * wraps generated ones; the Check's codec builds one from CheckDecodeError), and
 * `decoded()` turns it into the domain error in the handler.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { InvalidArgumentError } from '../errors/domain';

/** Why a request could not be decoded, as far as the caller is told. */
export type UndecodableReason = 'integer_too_large' | 'not_protobuf';

const DESCRIPTIONS: Record<UndecodableReason, string> = {
  integer_too_large: 'an integer field is larger than 2^53-1',
  not_protobuf: 'the message is not valid protobuf for this method',
};

export class UndecodableRequest {
  constructor(readonly reason: UndecodableReason) {}

  /** The violation's description on the wire. */
  get description(): string {
    return DESCRIPTIONS[this.reason];
  }
}

/**
 * The reason of a generated decoder's failure. The generated code reports a 64-bit
 * integer beyond 2^53-1 only by its message (longToNumber: "Value is larger than
 * Number.MAX_SAFE_INTEGER"), so that message is the one thing read here.
 */
function generatedDecoderReason(e: unknown): UndecodableReason {
  return e instanceof Error && e.message.includes('MAX_SAFE_INTEGER') ? 'integer_too_large' : 'not_protobuf';
}

export function safeDefinition<T extends ServiceDefinition>(def: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(def)) {
    const deserialize = method.requestDeserialize;
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return deserialize(bytes) as unknown;
        } catch (e) {
          return new UndecodableRequest(generatedDecoderReason(e));
        }
      },
    };
  }
  return out as T;
}

/** Returns the request, or throws invalid_argument if it could not be decoded. */
export function decoded<T>(req: T | UndecodableRequest): T {
  if (req instanceof UndecodableRequest) throw new InvalidArgumentError('request', req.description, 'undecodable');
  return req;
}
