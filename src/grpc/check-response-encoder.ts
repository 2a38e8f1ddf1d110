/**
 * The Check response's wire format, hand-coded for the hot path: the bytes of a
 * CheckResponse without the generic writer's per-field forks.
 *
 * Frozen parts are encoded once: a frozen header list, header option or string-valued
 * dynamic-metadata object (src/authz/response.ts shares them between responses, deeply
 * frozen) has its bytes kept in a WeakMap and copied into later responses. A frozen
 * part must therefore never change, down to its nested objects.
 */
import { CheckResponse } from '../gen/envoy/service/auth/v3/external_auth';
import { HeaderValueOption_HeaderAppendAction, type HeaderValueOption } from '../gen/envoy/config/core/v3/base';
import { StatusCode } from '../gen/envoy/type/v3/http_status';
import type { Status } from '../gen/google/rpc/status';
import { fieldTag, WireType } from './protobuf-wire';

const LEN = WireType.lengthDelimited;
const VARINT = WireType.varint;

/** Field tags of the messages written, by their Envoy (and google.*) field names and numbers. */
const CheckResponseField = {
  status: fieldTag(1, LEN),
  deniedResponse: fieldTag(2, LEN),
  okResponse: fieldTag(3, LEN),
  dynamicMetadata: fieldTag(4, LEN),
} as const;
const StatusField = { code: fieldTag(1, VARINT), message: fieldTag(2, LEN), details: fieldTag(3, LEN) } as const;
const AnyField = { typeUrl: fieldTag(1, LEN), value: fieldTag(2, LEN) } as const;
const DeniedHttpResponseField = { status: fieldTag(1, LEN), headers: fieldTag(2, LEN), body: fieldTag(3, LEN) } as const;
const HttpStatusField = { code: fieldTag(1, VARINT) } as const;
const OkHttpResponseField = {
  headers: fieldTag(2, LEN),
  dynamicMetadata: fieldTag(3, LEN),
  headersToRemove: fieldTag(5, LEN),
  responseHeadersToAdd: fieldTag(6, LEN),
  queryParametersToRemove: fieldTag(8, LEN),
} as const;
const HeaderValueOptionField = {
  header: fieldTag(1, LEN),
  append: fieldTag(2, LEN),
  appendAction: fieldTag(3, VARINT),
  keepEmptyValue: fieldTag(4, VARINT),
} as const;
const HeaderValueField = { key: fieldTag(1, LEN), value: fieldTag(2, LEN), rawValue: fieldTag(3, LEN) } as const;
/** google.protobuf.BoolValue */
const BoolValueField = { value: fieldTag(1, VARINT) } as const;
/** google.protobuf.Struct, its map entry, and Value's string_value. */
const StructField = { fields: fieldTag(1, LEN) } as const;
const StructEntryField = { key: fieldTag(1, LEN), value: fieldTag(2, LEN) } as const;
const ValueField = { stringValue: fieldTag(3, LEN) } as const;

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

  /** Field `tag` (length-delimited) holding the string's UTF-8. */
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

  /** Starts field `tag` (length-delimited) of nested content; returns the mark for end(). */
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

  /** Bytes already encoded (a frozen part's). */
  raw(b: Buffer): void {
    this.room(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }

  /** A copy of what was written since `start`. */
  since(start: number): Buffer {
    return Buffer.from(this.buf.subarray(start, this.pos));
  }

  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.pos));
    this.pos = 0;
    return out;
  }
}

const writer = new Writer();

/** A frozen part's bytes, with the field tag they were written under. */
interface Encoded {
  tag: number;
  bytes: Buffer;
}
const frozenParts = new WeakMap<object, Encoded>();

/** The bytes of frozen `part` under `tag` when known: copied in, true. */
function reuse(part: object, tag: number): boolean {
  if (!Object.isFrozen(part)) return false;
  const known = frozenParts.get(part);
  if (known === undefined || known.tag !== tag) return false;
  writer.raw(known.bytes);
  return true;
}

/** Keeps what was written since `start` as frozen `part`'s bytes under `tag`. */
function remember(part: object, tag: number, start: number): void {
  if (Object.isFrozen(part)) frozenParts.set(part, { tag, bytes: writer.since(start) });
}

function headerOptions(tag: number, list: readonly HeaderValueOption[]): void {
  if (list.length === 0 || reuse(list, tag)) return;
  const start = writer.pos;
  for (let i = 0; i < list.length; i++) headerOption(tag, list[i]!);
  remember(list, tag, start);
}

function headerOption(tag: number, option: HeaderValueOption): void {
  if (reuse(option, tag)) return;
  const start = writer.pos;
  const mark = writer.begin(tag);
  if (option.header !== undefined) {
    const header = writer.begin(HeaderValueOptionField.header);
    if (option.header.key !== '') writer.string(HeaderValueField.key, option.header.key);
    if (option.header.value !== '') writer.string(HeaderValueField.value, option.header.value);
    if (option.header.rawValue.length !== 0) writer.bytes(HeaderValueField.rawValue, option.header.rawValue);
    writer.end(header);
  }
  if (option.append !== undefined) {
    const append = writer.begin(HeaderValueOptionField.append);
    if (option.append) {
      writer.byte(BoolValueField.value);
      writer.byte(1);
    }
    writer.end(append);
  }
  if (option.appendAction !== HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD) {
    writer.byte(HeaderValueOptionField.appendAction);
    writer.varint(option.appendAction);
  }
  if (option.keepEmptyValue) {
    writer.byte(HeaderValueOptionField.keepEmptyValue);
    writer.byte(1);
  }
  writer.end(mark);
  remember(option, tag, start);
}

function status(value: Status): void {
  const mark = writer.begin(CheckResponseField.status);
  if (value.code !== 0) {
    writer.byte(StatusField.code);
    writer.varint(value.code);
  }
  if (value.message !== '') writer.string(StatusField.message, value.message);
  for (let i = 0; i < value.details.length; i++) {
    const detail = value.details[i]!;
    const any = writer.begin(StatusField.details);
    if (detail.typeUrl !== '') writer.string(AnyField.typeUrl, detail.typeUrl);
    if (detail.value.length !== 0) writer.bytes(AnyField.value, detail.value);
    writer.end(any);
  }
  writer.end(mark);
}

/** A google.protobuf.Struct whose values are all strings (see allStrings). */
function stringStruct(tag: number, struct: Record<string, unknown>): void {
  if (reuse(struct, tag)) return;
  const start = writer.pos;
  const mark = writer.begin(tag);
  for (const key in struct) {
    const value = struct[key];
    if (value === undefined) continue;
    const entry = writer.begin(StructField.fields);
    if (key !== '') writer.string(StructEntryField.key, key);
    const wrapped = writer.begin(StructEntryField.value);
    writer.string(ValueField.stringValue, value as string);
    writer.end(wrapped);
    writer.end(entry);
  }
  writer.end(mark);
  remember(struct, tag, start);
}

function allStrings(struct: Record<string, unknown> | undefined): boolean {
  if (struct === undefined) return true;
  for (const key in struct) if ((typeof struct[key] !== 'string' && struct[key] !== undefined) || key === '__proto__') return false;
  return true;
}

/**
 * CheckResponse bytes, identical to CheckResponse.encode(response) (same fields, same
 * order; test/property.wire-codec.test.ts checks it). What keyward does not produce
 * (dynamic metadata with non-string values, error_response, query parameters to set)
 * goes through the generated encoder.
 */
export function encodeCheckResponse(response: CheckResponse): Buffer {
  if (
    response.errorResponse !== undefined ||
    !allStrings(response.dynamicMetadata) ||
    !allStrings(response.okResponse?.dynamicMetadata) ||
    (response.okResponse && response.okResponse.queryParametersToSet.length > 0)
  ) {
    return Buffer.from(CheckResponse.encode(response).finish());
  }
  writer.pos = 0;
  try {
    if (response.status !== undefined) status(response.status);
    const denied = response.deniedResponse;
    if (denied !== undefined) {
      const mark = writer.begin(CheckResponseField.deniedResponse);
      if (denied.status !== undefined) {
        const httpStatus = writer.begin(DeniedHttpResponseField.status);
        if (denied.status.code !== StatusCode.Empty) {
          writer.byte(HttpStatusField.code);
          writer.varint(denied.status.code);
        }
        writer.end(httpStatus);
      }
      headerOptions(DeniedHttpResponseField.headers, denied.headers);
      if (denied.body !== '') writer.string(DeniedHttpResponseField.body, denied.body);
      writer.end(mark);
    }
    const ok = response.okResponse;
    if (ok !== undefined) {
      const mark = writer.begin(CheckResponseField.okResponse);
      headerOptions(OkHttpResponseField.headers, ok.headers);
      for (let i = 0; i < ok.headersToRemove.length; i++) writer.string(OkHttpResponseField.headersToRemove, ok.headersToRemove[i]!);
      if (ok.dynamicMetadata !== undefined) stringStruct(OkHttpResponseField.dynamicMetadata, ok.dynamicMetadata);
      headerOptions(OkHttpResponseField.responseHeadersToAdd, ok.responseHeadersToAdd);
      for (let i = 0; i < ok.queryParametersToRemove.length; i++)
        writer.string(OkHttpResponseField.queryParametersToRemove, ok.queryParametersToRemove[i]!);
      writer.end(mark);
    }
    if (response.dynamicMetadata !== undefined) stringStruct(CheckResponseField.dynamicMetadata, response.dynamicMetadata);
    return writer.take();
  } catch (e) {
    writer.pos = 0;
    throw e;
  }
}
