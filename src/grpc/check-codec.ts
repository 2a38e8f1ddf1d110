/**
 * The Check request's wire format, hand-coded for the hot path: decodeCheckAttributes
 * reads from CheckRequest bytes only what a decision needs and skips the rest unbuilt.
 * The response side is check-response-encoder.ts.
 */
import { asciiLower, headersOfMap, type HeaderList } from '../authz/credentials';
import { fieldTag, WireType } from './protobuf-wire';

/** What a decision reads from a CheckRequest (see src/authz/request.ts for its meaning). */
export interface RequestAttributes {
  /** HttpRequest.method, path, host as sent (possibly empty). */
  method: string;
  path: string;
  host: string;
  /** Headers with lower-cased names: header_map when it has entries, else the headers map. */
  headers: HeaderList;
  /** AttributeContext.context_extensions. */
  contextExtensions: Record<string, string>;
  /** AttributeContext.source.address.socket_address.address: the downstream peer's IP ('' when absent). */
  sourceAddress: string;
}

/** Why bytes are not a CheckRequest keyward accepts. */
export type CheckDecodeReason =
  /** A varint, field or length runs past the end of the bytes or of its message. */
  | 'truncated'
  /** A varint longer than 10 bytes. */
  | 'bad_varint'
  /** A group (3, 4) or reserved (6, 7) wire type. */
  | 'bad_wire_type'
  /** Field number 0. */
  | 'bad_field_number'
  /** A 64-bit integer beyond ±(2^53-1), which the generated decoder refuses too. */
  | 'integer_too_large';

/** Thrown by decodeCheckAttributes; `reason` classifies it, the message only describes it. */
export class CheckDecodeError extends Error {
  constructor(
    readonly reason: CheckDecodeReason,
    message: string,
  ) {
    super(message);
    this.name = 'CheckDecodeError';
  }
}

const LEN = WireType.lengthDelimited;

/** Field tags of the messages read, by their Envoy field names and numbers. */
const CheckRequestField = { attributes: fieldTag(1, LEN) } as const;
const AttributeContextField = { source: fieldTag(1, LEN), request: fieldTag(4, LEN), contextExtensions: fieldTag(10, LEN) } as const;
/** Peer.address, Address.socket_address, SocketAddress.address. */
const PeerField = { address: fieldTag(1, LEN) } as const;
const AddressField = { socketAddress: fieldTag(1, LEN) } as const;
const SocketAddressField = { address: fieldTag(2, LEN) } as const;
const RequestField = { http: fieldTag(2, LEN) } as const;
const HttpRequestField = {
  method: fieldTag(2, LEN),
  headers: fieldTag(3, LEN),
  path: fieldTag(4, LEN),
  host: fieldTag(5, LEN),
  size: fieldTag(9, WireType.varint),
  headerMap: fieldTag(13, LEN),
} as const;
const HeaderMapField = { headers: fieldTag(1, LEN) } as const;
const HeaderValueField = { key: fieldTag(1, LEN), value: fieldTag(2, LEN), rawValue: fieldTag(3, LEN) } as const;
/** A map<string, string> entry. */
const MapEntryField = { key: fieldTag(1, LEN), value: fieldTag(2, LEN) } as const;

class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** A varint that must fit 32 bits unsigned (tags, lengths). */
  uint32(): number {
    const buf = this.buf;
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new CheckDecodeError('truncated', 'truncated varint');
      const byte = buf[this.pos++]!;
      if (i < 5) result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if (byte < 0x80) return result > 0xffffffff ? result % 0x100000000 : result;
    }
    throw new CheckDecodeError('bad_varint', 'varint longer than 10 bytes');
  }

  /** An int64 varint as a number; throws when beyond ±(2^53-1). */
  int64(): number {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new CheckDecodeError('truncated', 'truncated varint');
      const byte = buf[this.pos++]!;
      const bits = byte & 0x7f;
      if (shift < 28) lo |= bits << shift;
      else if (shift === 28) {
        lo |= (bits & 0x0f) << 28;
        hi |= bits >>> 4;
      } else hi |= bits << (shift - 32);
      shift += 7;
      if (byte < 0x80) {
        const value = (hi | 0) * 0x100000000 + (lo >>> 0);
        if (value > Number.MAX_SAFE_INTEGER || value < Number.MIN_SAFE_INTEGER)
          throw new CheckDecodeError('integer_too_large', 'an integer field is larger than 2^53-1');
        return value;
      }
    }
    throw new CheckDecodeError('bad_varint', 'varint longer than 10 bytes');
  }

  /** The end offset of a length-delimited field starting here. */
  delimited(): number {
    const len = this.uint32();
    const end = this.pos + len;
    if (end > this.end) throw new CheckDecodeError('truncated', 'length beyond the message');
    return end;
  }

  string(): string {
    const end = this.delimited();
    const text = this.buf.toString('utf8', this.pos, end);
    this.pos = end;
    return text;
  }

  bytes(): Buffer {
    const end = this.delimited();
    const bytes = this.buf.subarray(this.pos, end);
    this.pos = end;
    return bytes;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WireType.varint:
        this.uint32();
        return;
      case WireType.fixed64:
        this.pos += 8;
        break;
      case WireType.lengthDelimited:
        this.pos = this.delimited();
        return;
      case WireType.fixed32:
        this.pos += 4;
        break;
      default:
        throw new CheckDecodeError('bad_wire_type', `wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new CheckDecodeError('truncated', 'truncated field');
  }
}

/** Runs `field(tag)` for each field of the message in [reader.pos, end); a field it does not consume is skipped. */
function fields(reader: Reader, end: number, field: (tag: number) => boolean): void {
  while (reader.pos < end) {
    const tag = reader.uint32();
    if (tag === 0) throw new CheckDecodeError('bad_field_number', 'field number 0');
    if (!field(tag)) reader.skip(tag & 7);
  }
  if (reader.pos !== end) throw new CheckDecodeError('truncated', 'field overruns its message');
}

/** A map<string,string> entry into `into`, last key wins (as the generated decoder). */
function mapEntry(reader: Reader, into: Record<string, string>): void {
  const end = reader.delimited();
  let key = '';
  let value = '';
  fields(reader, end, (tag) => {
    if (tag === MapEntryField.key) key = reader.string();
    else if (tag === MapEntryField.value) value = reader.string();
    else return false;
    return true;
  });
  into[key] = value;
}

interface Http {
  method: string;
  path: string;
  host: string;
  headers: Record<string, string>;
  headerMap: [string, string][];
}

function headerValue(reader: Reader, out: [string, string][]): void {
  const end = reader.delimited();
  let key = '';
  let value = '';
  let raw: Buffer | undefined;
  fields(reader, end, (tag) => {
    if (tag === HeaderValueField.key) key = reader.string();
    else if (tag === HeaderValueField.value) value = reader.string();
    else if (tag === HeaderValueField.rawValue) raw = reader.bytes();
    else return false;
    return true;
  });
  out.push([asciiLower(key), raw && raw.length > 0 ? raw.toString('latin1') : value]);
}

function headerMap(reader: Reader): [string, string][] {
  const end = reader.delimited();
  const out: [string, string][] = [];
  fields(reader, end, (tag) => {
    if (tag !== HeaderMapField.headers) return false;
    headerValue(reader, out);
    return true;
  });
  return out;
}

function httpRequest(reader: Reader): Http {
  const end = reader.delimited();
  const http: Http = { method: '', path: '', host: '', headers: {}, headerMap: [] };
  fields(reader, end, (tag) => {
    switch (tag) {
      case HttpRequestField.method:
        http.method = reader.string();
        return true;
      case HttpRequestField.headers:
        mapEntry(reader, http.headers);
        return true;
      case HttpRequestField.path:
        http.path = reader.string();
        return true;
      case HttpRequestField.host:
        http.host = reader.string();
        return true;
      case HttpRequestField.size:
        reader.int64(); // validated like the generated decoder, not used
        return true;
      case HttpRequestField.headerMap:
        http.headerMap = headerMap(reader);
        return true;
      default:
        return false;
    }
  });
  return http;
}

function request(reader: Reader): Http | undefined {
  const end = reader.delimited();
  let http: Http | undefined;
  fields(reader, end, (tag) => {
    if (tag !== RequestField.http) return false;
    http = httpRequest(reader);
    return true;
  });
  return http;
}

interface Attributes {
  http: Http | undefined;
  contextExtensions: Record<string, string>;
  sourceAddress: string;
}

/** A message whose one field of interest is another message (last wins): `inner` reads that one. */
function nested<T>(reader: Reader, wanted: number, inner: () => T): T | undefined {
  const end = reader.delimited();
  let out: T | undefined;
  fields(reader, end, (tag) => {
    if (tag !== wanted) return false;
    out = inner();
    return true;
  });
  return out;
}

/** Peer → Address → SocketAddress → address. */
function peerAddress(reader: Reader): string {
  const socket = () => nested(reader, SocketAddressField.address, () => reader.string()) ?? '';
  const address = () => nested(reader, AddressField.socketAddress, socket);
  return nested(reader, PeerField.address, address) ?? '';
}

function attributeContext(reader: Reader): Attributes {
  const end = reader.delimited();
  const attributes: Attributes = { http: undefined, contextExtensions: {}, sourceAddress: '' };
  fields(reader, end, (tag) => {
    if (tag === AttributeContextField.request) attributes.http = request(reader);
    else if (tag === AttributeContextField.source) attributes.sourceAddress = peerAddress(reader);
    else if (tag === AttributeContextField.contextExtensions) mapEntry(reader, attributes.contextExtensions);
    else return false;
    return true;
  });
  return attributes;
}

const NO_ATTRIBUTES: RequestAttributes = Object.freeze({
  method: '',
  path: '',
  host: '',
  headers: Object.freeze([]),
  contextExtensions: Object.freeze({}),
  sourceAddress: '',
});

/**
 * Reads the decision's attributes from serialized envoy.service.auth.v3.CheckRequest
 * bytes. Contract (test/property.wire-codec.test.ts checks it against the generated
 * decoder):
 *  - The result equals what the generated decoder reads for every request it accepts:
 *    same last-wins rules for repeated scalars, sub-messages and map keys, same UTF-8
 *    replacement, same header order.
 *  - Throws CheckDecodeError for bytes that are not protobuf (truncated, bad varint, a
 *    length beyond the message, a group or reserved wire type, field number 0) and for
 *    an HttpRequest.size beyond ±(2^53-1). Fields it does not read (peers, metadata,
 *    time, body, …) are skipped whole by wire type and length, content unexamined.
 */
export function decodeCheckAttributes(bytes: Uint8Array): RequestAttributes {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const reader = new Reader(buf, 0, buf.length);
  let attributes: Attributes | undefined;
  fields(reader, buf.length, (tag) => {
    if (tag !== CheckRequestField.attributes) return false;
    attributes = attributeContext(reader);
    return true;
  });
  if (!attributes) return NO_ATTRIBUTES;
  const http = attributes.http;
  const { contextExtensions, sourceAddress } = attributes;
  if (!http) return { method: '', path: '', host: '', headers: [], contextExtensions, sourceAddress };
  const headers: HeaderList = http.headerMap.length > 0 ? http.headerMap : headersOfMap(http.headers);
  return { method: http.method, path: http.path, host: http.host, headers, contextExtensions, sourceAddress };
}
