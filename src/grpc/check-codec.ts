/**
 * The Check's wire format, hand-coded for the hot path.
 *
 * decodeCheckAttributes(bytes): reads from a serialized envoy.service.auth.v3.CheckRequest
 * only what a decision needs (RequestAttributes) and skips everything else without
 * building it. Contract, checked against the generated decoder by
 * test/property.wire-codec.test.ts:
 *  - The result equals attributesOf(CheckRequest.decode(bytes)) for every request the
 *    generated decoder accepts (same last-wins rules for repeated scalars, sub-messages
 *    and map keys, same UTF-8 replacement, same header order).
 *  - It throws WireError for bytes that are not protobuf (truncated, bad varint, a
 *    length beyond the message, a group or reserved wire type), and for an
 *    HttpRequest.size beyond ±(2^53-1), which the generated decoder also refuses.
 *    Fields it does not read (peers, metadata, time, body, …) are skipped whole by
 *    their wire type and length; their content is not examined.
 *
 * encodeCheckResponse(response): the bytes of a CheckResponse, identical to
 * CheckResponse.encode(response) (same fields, same order), without the generic
 * writer's per-field forks. Anything keyward does not produce (dynamic metadata
 * with non-string values, error_response, query parameters to set) goes through
 * the generated encoder.
 */
import { CheckResponse } from '../gen/envoy/service/auth/v3/external_auth';
import type { HeaderValueOption } from '../gen/envoy/config/core/v3/base';
import type { Status } from '../gen/google/rpc/status';
import { asciiLower, headersOfMap, type HeaderList } from '../authz/credentials';

/** What a decision reads from a CheckRequest (see request.ts for its meaning). */
export interface RequestAttributes {
  /** HttpRequest.method, path, host as sent (possibly empty). */
  method: string;
  path: string;
  host: string;
  /** Headers with lower-cased names: header_map when it has entries, else the headers map. */
  headers: HeaderList;
  /** AttributeContext.context_extensions. */
  contextExtensions: Record<string, string>;
}

export class WireError extends Error {}

// ---------------------------------------------------------------- decoding

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
    const b = this.buf;
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError('truncated varint');
      const byte = b[this.pos++]!;
      if (i < 5) result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if (byte < 0x80) return result > 0xffffffff ? result % 0x100000000 : result;
    }
    throw new WireError('varint longer than 10 bytes');
  }

  /** An int64 varint as a number; throws when beyond ±(2^53-1). */
  int64(): number {
    const b = this.buf;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError('truncated varint');
      const byte = b[this.pos++]!;
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
          throw new WireError('an integer field is larger than 2^53-1');
        return value;
      }
    }
    throw new WireError('varint longer than 10 bytes');
  }

  /** The end offset of a length-delimited field starting here. */
  delimited(): number {
    const len = this.uint32();
    const end = this.pos + len;
    if (end > this.end) throw new WireError('length beyond the message');
    return end;
  }

  string(): string {
    const end = this.delimited();
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end;
    return s;
  }

  bytes(): Buffer {
    const end = this.delimited();
    const s = this.buf.subarray(this.pos, end);
    this.pos = end;
    return s;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.uint32();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.pos = this.delimited();
        return;
      case 5:
        this.pos += 4;
        break;
      default:
        throw new WireError(`wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new WireError('truncated field');
  }
}

/** Runs `field(tag)` for each field of the message in [r.pos, end); a field it does not consume is skipped. */
function fields(r: Reader, end: number, field: (tag: number) => boolean): void {
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag === 0) throw new WireError('field number 0');
    if (!field(tag)) r.skip(tag & 7);
  }
  if (r.pos !== end) throw new WireError('field overruns its message');
}

/** A map<string,string> entry into `into`, last key wins (as the generated decoder). */
function mapEntry(r: Reader, into: Record<string, string>): void {
  const end = r.delimited();
  let key = '';
  let value = '';
  fields(r, end, (tag) => {
    if (tag === 10) key = r.string();
    else if (tag === 18) value = r.string();
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

function headerValue(r: Reader, out: [string, string][]): void {
  const end = r.delimited();
  let key = '';
  let value = '';
  let raw: Buffer | undefined;
  fields(r, end, (tag) => {
    if (tag === 10) key = r.string();
    else if (tag === 18) value = r.string();
    else if (tag === 26) raw = r.bytes();
    else return false;
    return true;
  });
  out.push([asciiLower(key), raw && raw.length > 0 ? raw.toString('latin1') : value]);
}

function headerMap(r: Reader): [string, string][] {
  const end = r.delimited();
  const out: [string, string][] = [];
  fields(r, end, (tag) => {
    if (tag !== 10) return false;
    headerValue(r, out);
    return true;
  });
  return out;
}

function httpRequest(r: Reader): Http {
  const end = r.delimited();
  const h: Http = { method: '', path: '', host: '', headers: {}, headerMap: [] };
  fields(r, end, (tag) => {
    switch (tag) {
      case 18:
        h.method = r.string();
        return true;
      case 26:
        mapEntry(r, h.headers);
        return true;
      case 34:
        h.path = r.string();
        return true;
      case 42:
        h.host = r.string();
        return true;
      case 72:
        r.int64(); // size: validated like the generated decoder, not used
        return true;
      case 106:
        h.headerMap = headerMap(r);
        return true;
      default:
        return false;
    }
  });
  return h;
}

function request(r: Reader): Http | undefined {
  const end = r.delimited();
  let http: Http | undefined;
  fields(r, end, (tag) => {
    if (tag !== 18) return false;
    http = httpRequest(r);
    return true;
  });
  return http;
}

interface Attributes {
  http: Http | undefined;
  ext: Record<string, string>;
}

function attributeContext(r: Reader): Attributes {
  const end = r.delimited();
  const a: Attributes = { http: undefined, ext: {} };
  fields(r, end, (tag) => {
    if (tag === 34) a.http = request(r);
    else if (tag === 82) mapEntry(r, a.ext);
    else return false;
    return true;
  });
  return a;
}

const NO_ATTRIBUTES: RequestAttributes = Object.freeze({
  method: '',
  path: '',
  host: '',
  headers: Object.freeze([]),
  contextExtensions: Object.freeze({}),
}) as RequestAttributes;

/** Reads the decision's attributes from CheckRequest bytes; throws WireError if they are not protobuf. */
export function decodeCheckAttributes(bytes: Uint8Array): RequestAttributes {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new Reader(buf, 0, buf.length);
  let a: Attributes | undefined;
  fields(r, buf.length, (tag) => {
    if (tag !== 10) return false;
    a = attributeContext(r);
    return true;
  });
  if (!a) return NO_ATTRIBUTES;
  const http = a.http;
  if (!http) return { method: '', path: '', host: '', headers: [], contextExtensions: a.ext };
  const headers: HeaderList = http.headerMap.length > 0 ? http.headerMap : headersOfMap(http.headers);
  return { method: http.method, path: http.path, host: http.host, headers, contextExtensions: a.ext };
}

// ---------------------------------------------------------------- encoding

/** A reusable scratch writer; nested lengths are patched in place (content moved if the length needs >1 byte). */
class Writer {
  buf = Buffer.allocUnsafe(8192);
  pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  varint(v: number): void {
    this.room(10);
    if (v < 0) {
      // int32 negatives are 10-byte varints (sign-extended to 64 bits)
      let lo = v >>> 0;
      for (let i = 0; i < 4; i++) {
        this.buf[this.pos++] = (lo & 0x7f) | 0x80;
        lo >>>= 7;
      }
      this.buf[this.pos++] = (lo & 0x0f) | 0x70 | 0x80;
      for (let i = 0; i < 4; i++) this.buf[this.pos++] = 0xff;
      this.buf[this.pos++] = 0x01;
      return;
    }
    while (v > 0x7f) {
      this.buf[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  /** Field `tag` (wire type 2) holding the string's UTF-8. */
  string(tag: number, s: string): void {
    this.room(s.length * 3 + 6);
    this.buf[this.pos++] = tag;
    if (s.length < 43) {
      // at most 126 bytes: the length fits one byte
      const n = this.buf.write(s, this.pos + 1, 'utf8');
      this.buf[this.pos] = n;
      this.pos += 1 + n;
      return;
    }
    const n = Buffer.byteLength(s, 'utf8');
    this.varint(n);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  bytes(tag: number, b: Uint8Array): void {
    this.byte(tag);
    this.varint(b.length);
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Starts field `tag` (wire type 2) of nested content; returns the mark for end(). */
  begin(tag: number): number {
    this.room(2);
    this.buf[this.pos++] = tag;
    return this.pos++;
  }

  end(mark: number): void {
    const len = this.pos - mark - 1;
    if (len < 128) {
      this.buf[mark] = len;
      return;
    }
    let extra = 0;
    for (let v = len >>> 7; v > 0; v >>>= 7) extra++;
    this.room(extra);
    this.buf.copy(this.buf, mark + 1 + extra, mark + 1, this.pos);
    this.pos = mark;
    this.varint(len);
    this.pos += len;
  }

  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.pos));
    this.pos = 0;
    return out;
  }
}

const w = new Writer();

function header(tag: number, o: HeaderValueOption): void {
  const m = w.begin(tag);
  if (o.header !== undefined) {
    const h = w.begin(10);
    if (o.header.key !== '') w.string(10, o.header.key);
    if (o.header.value !== '') w.string(18, o.header.value);
    if (o.header.rawValue.length !== 0) w.bytes(26, o.header.rawValue);
    w.end(h);
  }
  if (o.append !== undefined) {
    // google.protobuf.BoolValue
    const b = w.begin(18);
    if (o.append) {
      w.byte(8);
      w.byte(1);
    }
    w.end(b);
  }
  if (o.appendAction !== 0) {
    w.byte(24);
    w.varint(o.appendAction);
  }
  if (o.keepEmptyValue) {
    w.byte(32);
    w.byte(1);
  }
  w.end(m);
}

function status(s: Status): void {
  const m = w.begin(10);
  if (s.code !== 0) {
    w.byte(8);
    w.varint(s.code);
  }
  if (s.message !== '') w.string(18, s.message);
  for (const d of s.details) {
    const a = w.begin(26);
    if (d.typeUrl !== '') w.string(10, d.typeUrl);
    if (d.value.length !== 0) w.bytes(18, d.value);
    w.end(a);
  }
  w.end(m);
}

function stringStruct(tag: number, o: Record<string, unknown>): void {
  const m = w.begin(tag);
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    const e = w.begin(10);
    if (k !== '') w.string(10, k);
    const val = w.begin(18);
    w.string(26, v as string);
    w.end(val);
    w.end(e);
  }
  w.end(m);
}

function allStrings(o: Record<string, unknown> | undefined): boolean {
  if (o === undefined) return true;
  for (const k in o) if ((typeof o[k] !== 'string' && o[k] !== undefined) || k === '__proto__') return false;
  return true;
}

/** CheckResponse bytes, identical to the generated encoder's. */
export function encodeCheckResponse(r: CheckResponse): Buffer {
  if (
    r.errorResponse !== undefined ||
    !allStrings(r.dynamicMetadata) ||
    !allStrings(r.okResponse?.dynamicMetadata) ||
    (r.okResponse && r.okResponse.queryParametersToSet.length > 0)
  ) {
    return Buffer.from(CheckResponse.encode(r).finish());
  }
  w.pos = 0;
  try {
    if (r.status !== undefined) status(r.status);
    const d = r.deniedResponse;
    if (d !== undefined) {
      const m = w.begin(18);
      if (d.status !== undefined) {
        const s = w.begin(10);
        if (d.status.code !== 0) {
          w.byte(8);
          w.varint(d.status.code);
        }
        w.end(s);
      }
      for (const h of d.headers) header(18, h);
      if (d.body !== '') w.string(26, d.body);
      w.end(m);
    }
    const ok = r.okResponse;
    if (ok !== undefined) {
      const m = w.begin(26);
      for (const h of ok.headers) header(18, h);
      for (const s of ok.headersToRemove) w.string(42, s);
      if (ok.dynamicMetadata !== undefined) stringStruct(26, ok.dynamicMetadata);
      for (const h of ok.responseHeadersToAdd) header(50, h);
      for (const s of ok.queryParametersToRemove) w.string(66, s);
      w.end(m);
    }
    if (r.dynamicMetadata !== undefined) stringStruct(34, r.dynamicMetadata);
    return w.take();
  } catch (e) {
    w.pos = 0;
    throw e;
  }
}
