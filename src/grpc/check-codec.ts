/**
 * The Check request's wire format, hand-coded for the hot path: decodeCheckAttributes
 * reads from CheckRequest bytes only what a decision needs and skips the rest unbuilt.
 * The response side is check-response-encoder.ts.
 */
import { asciiLower, type HeaderList } from '../authz/credentials';
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

/**
 * The next field's tag of the message ending at `end`, or 0 when the message is read
 * (a field overrunning it is truncation). Loops over fields call it instead of taking
 * a callback, so that reading a message allocates no closure.
 */
function nextTag(reader: Reader, end: number): number {
  if (reader.pos >= end) {
    if (reader.pos !== end) throw new CheckDecodeError('truncated', 'field overruns its message');
    return 0;
  }
  const tag = reader.uint32();
  if (tag === 0) throw new CheckDecodeError('bad_field_number', 'field number 0');
  return tag;
}

/** The last map<string,string> entry read (one at a time, synchronously: no object per entry). */
const entry = { key: '', value: '' };

/** Reads a map<string,string> entry into `entry`. */
function readMapEntry(reader: Reader): typeof entry {
  const end = reader.delimited();
  entry.key = '';
  entry.value = '';
  for (let tag = nextTag(reader, end); tag !== 0; tag = nextTag(reader, end)) {
    if (tag === MapEntryField.key) entry.key = reader.string();
    else if (tag === MapEntryField.value) entry.value = reader.string();
    else reader.skip(tag & 7);
  }
  return entry;
}

/** A map<string,string> entry into `into`, last key wins (as the generated decoder). */
function mapEntry(reader: Reader, into: Record<string, string>): void {
  const { key, value } = readMapEntry(reader);
  into[key] = value;
}

interface Http {
  method: string;
  path: string;
  host: string;
  /** HttpRequest.headers as [name as sent, value], in map semantics (see headerEntry). */
  headers: [string, string][];
  /** Positions in `headers` by name, once there are more than a few. */
  headerIndex: Map<string, number> | undefined;
  headerMap: [string, string][];
}

/** Up to this many map headers, a repeated name is found by a scan; beyond it, by an index. */
const SCAN_MAX = 8;

/**
 * A HttpRequest.headers entry (map<string,string>) into http.headers, as the generated
 * decoder's object would hold it: a repeated name keeps its first position and takes
 * the last value. (The object's order of array-index names is applied at the end,
 * in mapHeaders.)
 */
function headerEntry(reader: Reader, http: Http): void {
  const { key, value } = readMapEntry(reader);
  if (key === '__proto__') return; // the generated decoder's object drops it too
  const list = http.headers;
  let at = -1;
  if (http.headerIndex) at = http.headerIndex.get(key) ?? -1;
  else for (let i = 0; i < list.length; i++) if (list[i]![0] === key) at = i;
  if (at >= 0) {
    list[at]![1] = value;
    return;
  }
  list.push([key, value]);
  if (http.headerIndex) http.headerIndex.set(key, list.length - 1);
  else if (list.length > SCAN_MAX) http.headerIndex = new Map(list.map(([k], i) => [k, i]));
}

/** A JS object's array-index key (listed first, ascending, by Object.keys). */
const ARRAY_INDEX = /^(?:0|[1-9][0-9]{0,9})$/;
const isArrayIndex = (k: string) => ARRAY_INDEX.test(k) && Number(k) < 4294967295;

/** The map headers as a header list: names lower-cased, in the generated decoder's object key order. */
function mapHeaders(list: [string, string][]): HeaderList {
  let numeric = false;
  for (const entry of list) {
    if (!numeric && entry[0].length > 0 && entry[0].charCodeAt(0) <= 57 && isArrayIndex(entry[0])) numeric = true;
  }
  const ordered = numeric
    ? [...list.filter(([k]) => isArrayIndex(k)).sort((a, b) => Number(a[0]) - Number(b[0])), ...list.filter(([k]) => !isArrayIndex(k))]
    : list;
  for (const entry of ordered) entry[0] = asciiLower(entry[0]);
  return ordered;
}

function headerValue(reader: Reader, out: [string, string][]): void {
  const end = reader.delimited();
  let key = '';
  let value = '';
  let raw: Buffer | undefined;
  for (let tag = nextTag(reader, end); tag !== 0; tag = nextTag(reader, end)) {
    if (tag === HeaderValueField.key) key = reader.string();
    else if (tag === HeaderValueField.value) value = reader.string();
    else if (tag === HeaderValueField.rawValue) raw = reader.bytes();
    else reader.skip(tag & 7);
  }
  out.push([asciiLower(key), raw && raw.length > 0 ? raw.toString('latin1') : value]);
}

function headerMap(reader: Reader): [string, string][] {
  const end = reader.delimited();
  const out: [string, string][] = [];
  for (let tag = nextTag(reader, end); tag !== 0; tag = nextTag(reader, end)) {
    if (tag === HeaderMapField.headers) headerValue(reader, out);
    else reader.skip(tag & 7);
  }
  return out;
}

function httpRequest(reader: Reader): Http {
  const end = reader.delimited();
  const http: Http = { method: '', path: '', host: '', headers: [], headerIndex: undefined, headerMap: [] };
  for (let tag = nextTag(reader, end); tag !== 0; tag = nextTag(reader, end)) {
    switch (tag) {
      case HttpRequestField.method:
        http.method = reader.string();
        break;
      case HttpRequestField.headers:
        headerEntry(reader, http);
        break;
      case HttpRequestField.path:
        http.path = reader.string();
        break;
      case HttpRequestField.host:
        http.host = reader.string();
        break;
      case HttpRequestField.size:
        reader.int64(); // validated like the generated decoder, not used
        break;
      case HttpRequestField.headerMap:
        http.headerMap = headerMap(reader);
        break;
      default:
        reader.skip(tag & 7);
    }
  }
  return http;
}

function request(reader: Reader): Http | undefined {
  const end = reader.delimited();
  let http: Http | undefined;
  for (let tag = nextTag(reader, end); tag !== 0; tag = nextTag(reader, end)) {
    if (tag === RequestField.http) http = httpRequest(reader);
    else reader.skip(tag & 7);
  }
  return http;
}

interface Attributes {
  http: Http | undefined;
  contextExtensions: Record<string, string>;
  sourceAddress: string;
}

/** The last `wanted` string field of a message, '' when absent. */
function nestedString(reader: Reader, wanted: number): string {
  const end = reader.delimited();
  let out = '';
  for (let tag = nextTag(reader, end); tag !== 0; tag = nextTag(reader, end)) {
    if (tag === wanted) out = reader.string();
    else reader.skip(tag & 7);
  }
  return out;
}

/** The last `wanted` sub-message of a message, read by `inner`; '' when absent. */
function nestedMessage(reader: Reader, wanted: number, inner: (reader: Reader) => string): string {
  const end = reader.delimited();
  let out = '';
  for (let tag = nextTag(reader, end); tag !== 0; tag = nextTag(reader, end)) {
    if (tag === wanted) out = inner(reader);
    else reader.skip(tag & 7);
  }
  return out;
}

const socketAddress = (reader: Reader) => nestedString(reader, SocketAddressField.address);
const address = (reader: Reader) => nestedMessage(reader, AddressField.socketAddress, socketAddress);

/** Peer → Address → SocketAddress → address. */
function peerAddress(reader: Reader): string {
  return nestedMessage(reader, PeerField.address, address);
}

function attributeContext(reader: Reader): Attributes {
  const end = reader.delimited();
  const attributes: Attributes = { http: undefined, contextExtensions: {}, sourceAddress: '' };
  for (let tag = nextTag(reader, end); tag !== 0; tag = nextTag(reader, end)) {
    if (tag === AttributeContextField.request) attributes.http = request(reader);
    else if (tag === AttributeContextField.source) attributes.sourceAddress = peerAddress(reader);
    else if (tag === AttributeContextField.contextExtensions) mapEntry(reader, attributes.contextExtensions);
    else reader.skip(tag & 7);
  }
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
  for (let tag = nextTag(reader, buf.length); tag !== 0; tag = nextTag(reader, buf.length)) {
    if (tag === CheckRequestField.attributes) attributes = attributeContext(reader);
    else reader.skip(tag & 7);
  }
  if (!attributes) return NO_ATTRIBUTES;
  const http = attributes.http;
  const { contextExtensions, sourceAddress } = attributes;
  if (!http) return { method: '', path: '', host: '', headers: [], contextExtensions, sourceAddress };
  const headers: HeaderList = http.headerMap.length > 0 ? http.headerMap : mapHeaders(http.headers);
  return { method: http.method, path: http.path, host: http.host, headers, contextExtensions, sourceAddress };
}
