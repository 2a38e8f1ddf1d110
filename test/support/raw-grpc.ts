/**
 * Raw protobuf and raw gRPC for fuzz tests: messages are written field by field
 * (so they can hold invalid UTF-8, wrong wire types, enormous varints, unknown
 * fields), sent as bytes through a generic grpc-js Client (identity serializers),
 * or through node:http2 directly when the metadata itself is something grpc-js
 * refuses to send (control characters, non-ASCII).
 *
 * Every call resolves, never rejects: to { status, details, trailers, response }.
 */
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { runInThisContext } from 'node:vm';
import { Status } from '../../src/gen/google/rpc/status';
import { BadRequest, ErrorInfo } from '../../src/gen/google/rpc/error_details';

// ---------------------------------------------------------------- protobuf writing

export const WT = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;

/** A varint of any non-negative size (bigint beyond 2^53); 10 bytes for 2^64-1. */
export function varint(v: number | bigint): Buffer {
  let n = BigInt(v);
  if (n < 0n) n = BigInt.asUintN(64, n);
  const out: number[] = [];
  while (n > 0x7fn) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return Buffer.from(out);
}

export function tag(field: number, wireType: number): Buffer {
  return varint((BigInt(field) << 3n) | BigInt(wireType));
}

/** A length-delimited field (string, bytes, sub-message, map entry). */
export function ld(field: number, ...parts: (Buffer | string)[]): Buffer {
  return ldAll(field, parts);
}

/** ld() for many parts (no argument spreading). */
export function ldAll(field: number, parts: (Buffer | string)[]): Buffer {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
  return Buffer.concat([tag(field, WT.LEN), varint(body.length), body]);
}

/**
 * `inner` wrapped in length-delimited fields, innermost wrapper first; each wrapper
 * is [bytes written before the field inside its message, field number]. Linear in the
 * result's size, however deep.
 */
export function wrapDeep(inner: Buffer, wrappers: Iterable<[Buffer, number]>): Buffer {
  const prefixes: Buffer[] = [];
  let len = inner.length;
  for (const [before, field] of wrappers) {
    const p = Buffer.concat([before, tag(field, WT.LEN), varint(len)]);
    prefixes.push(p);
    len += p.length;
  }
  prefixes.reverse();
  prefixes.push(inner);
  return Buffer.concat(prefixes, len);
}

export function vi(field: number, v: number | bigint): Buffer {
  return Buffer.concat([tag(field, WT.VARINT), varint(v)]);
}

/** A map<string,string> entry (or any map entry with byte key/value). */
export function mapEntry(field: number, key: Buffer | string, value: Buffer | string): Buffer {
  return ld(field, ld(1, key), ld(2, value));
}

/**
 * The body of a google.protobuf.Struct nested `depth` levels deep: each level is
 * { "d<i>": Value { struct_value: <next> } }, or with `viaLists` every other level goes
 * through Value.list_value { values: [Value { struct_value }] }.
 */
export function deepStruct(depth: number, viaLists = false): Buffer {
  const leaf = mapEntry(1, 'leaf', ld(3, 'x')); // { leaf: Value { string_value: "x" } }
  function* levels(): Generator<[Buffer, number]> {
    for (let i = 1; i < depth; i++) {
      if (viaLists && i % 2 === 0) {
        yield [Buffer.alloc(0), 5]; // Value.struct_value
        yield [Buffer.alloc(0), 1]; // ListValue.values
        yield [Buffer.alloc(0), 6]; // Value.list_value
      } else yield [Buffer.alloc(0), 5];
      yield [ld(1, `d${i}`), 2]; // entry: key, then value
      yield [Buffer.alloc(0), 1]; // Struct.fields
    }
  }
  return wrapDeep(leaf, levels());
}

/** envoy.config.core.v3.Metadata { filter_metadata: { ns: struct } } as the bytes of its body. */
export function filterMetadata(ns: Buffer | string, structBody: Buffer): Buffer {
  return ld(1, ld(1, ns), ld(2, structBody));
}

export interface RawCheck {
  method?: Buffer | string;
  path?: Buffer | string;
  host?: Buffer | string;
  /** HttpRequest.headers (map<string,string>), in order; names and values may be raw bytes. */
  headers?: [Buffer | string, Buffer | string][];
  /** HttpRequest.header_map: key, value (string field) and raw_value (bytes field). */
  headerMap?: { key: Buffer | string; value?: Buffer | string; raw?: Buffer | string }[];
  contextExtensions?: [Buffer | string, Buffer | string][];
  /** AttributeContext.metadata_context (field 11), already encoded (its body). */
  metadataContext?: Buffer;
  /** AttributeContext.route_metadata_context (field 13). */
  routeMetadataContext?: Buffer;
  /** Bytes appended inside HttpRequest, AttributeContext and CheckRequest (e.g. unknown fields). */
  extraHttp?: Buffer;
  extraAttributes?: Buffer;
  extra?: Buffer;
}

/** A CheckRequest written by hand (field numbers of proto/envoy/service/auth/v3). */
export function checkRequest(r: RawCheck): Buffer {
  const http: Buffer[] = [ld(1, 'req-1')];
  if (r.method !== undefined) http.push(ld(2, r.method));
  for (const [k, v] of r.headers ?? []) http.push(mapEntry(3, k, v));
  if (r.path !== undefined) http.push(ld(4, r.path));
  if (r.host !== undefined) http.push(ld(5, r.host));
  if (r.headerMap) {
    const entries = r.headerMap.map((h) =>
      ld(1, ld(1, h.key), ...(h.value !== undefined ? [ld(2, h.value)] : []), ...(h.raw !== undefined ? [ld(3, h.raw)] : [])),
    );
    http.push(ldAll(13, entries));
  }
  if (r.extraHttp) http.push(r.extraHttp);
  const attrs: Buffer[] = [ld(4, ldAll(2, http))];
  for (const [k, v] of r.contextExtensions ?? []) attrs.push(mapEntry(10, k, v));
  if (r.metadataContext) attrs.push(ld(11, r.metadataContext));
  if (r.routeMetadataContext) attrs.push(ld(13, r.routeMetadataContext));
  if (r.extraAttributes) attrs.push(r.extraAttributes);
  return Buffer.concat([ldAll(1, attrs), r.extra ?? Buffer.alloc(0)]);
}

// ---------------------------------------------------------------- calls through grpc-js

export interface RawResult {
  /** gRPC status code (0 = OK). */
  status: number;
  details: string;
  /** Trailers (or, for a failed call, the error's metadata). */
  trailers: Metadata;
  response?: Buffer;
}

const identity = (b: Buffer): Buffer => b;

/** A generic grpc-js client that sends and receives bytes. */
export class RawClient {
  readonly client: Client;
  constructor(port: number, options: Record<string, unknown> = {}) {
    // Let the client receive as much as the server may send (16 MiB).
    this.client = new Client(`127.0.0.1:${port}`, credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      ...options,
    });
  }

  unary(path: string, body: Buffer, metadata: Metadata = new Metadata(), timeoutMs = 20_000): Promise<RawResult> {
    return new Promise((resolve) => {
      let trailers = new Metadata();
      const call = this.client.makeUnaryRequest(
        path,
        identity,
        identity,
        body,
        metadata,
        { deadline: Date.now() + timeoutMs },
        (e: ServiceError | null, r?: Buffer) => {
          if (e) resolve({ status: e.code, details: e.details, trailers: e.metadata ?? new Metadata() });
          else resolve({ status: 0, details: '', trailers, response: r });
        },
      );
      call.on('status', (s) => (trailers = s.metadata));
    });
  }

  /** A client stream: writes every message, ends, and resolves with the answer. */
  clientStream(path: string, messages: Buffer[], metadata: Metadata = new Metadata(), timeoutMs = 20_000): Promise<RawResult> {
    return new Promise((resolve) => {
      let trailers = new Metadata();
      const call = this.client.makeClientStreamRequest(
        path,
        identity,
        identity,
        metadata,
        { deadline: Date.now() + timeoutMs },
        (e: ServiceError | null, r?: Buffer) => {
          if (e) resolve({ status: e.code, details: e.details, trailers: e.metadata ?? new Metadata() });
          else resolve({ status: 0, details: '', trailers, response: r });
        },
      );
      call.on('status', (s) => (trailers = s.metadata));
      call.on('error', () => undefined);
      for (const m of messages) call.write(m);
      call.end();
    });
  }

  close(): void {
    this.client.close();
  }
}

/** The keyward error of a failed call: ErrorInfo (from grpc-status-details-bin) and the x-error-code trailer. */
export function keywardError(r: RawResult): { trailerCode: string; info?: ErrorInfo; badRequest?: BadRequest; detailTypes: string[] } {
  const trailerCode = String(r.trailers.get('x-error-code')[0] ?? '');
  const bin = r.trailers.get('grpc-status-details-bin')[0];
  let info: ErrorInfo | undefined;
  let badRequest: BadRequest | undefined;
  const detailTypes: string[] = [];
  if (bin instanceof Buffer) {
    const st = Status.decode(bin);
    for (const d of st.details) {
      detailTypes.push(d.typeUrl);
      if (d.typeUrl === 'type.googleapis.com/google.rpc.ErrorInfo') info = ErrorInfo.decode(d.value);
      if (d.typeUrl === 'type.googleapis.com/google.rpc.BadRequest') badRequest = BadRequest.decode(d.value);
    }
  }
  return { trailerCode, info, badRequest, detailTypes };
}

// ---------------------------------------------------------------- calls through node:http2

/** A gRPC length-prefixed message: flag 0, 4-byte big-endian length, payload. */
export function grpcFrame(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** A unary gRPC call with headers as given (values may hold anything HTTP/2 carries). */
export function http2Unary(
  port: number,
  path: string,
  body: Buffer,
  headers: Record<string, string>,
  timeoutMs = 20_000,
): Promise<RawResult> {
  return new Promise((resolve) => {
    const session: ClientHttp2Session = connect(`http://127.0.0.1:${port}`);
    const done = (r: RawResult) => {
      clearTimeout(timer);
      session.close();
      resolve(r);
    };
    const timer = setTimeout(() => done({ status: -1, details: 'timed out', trailers: new Metadata() }), timeoutMs);
    session.on('error', (e: Error) => done({ status: -2, details: `session error: ${e.message}`, trailers: new Metadata() }));
    const req = session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    const chunks: Buffer[] = [];
    let head: IncomingHttpHeaders = {};
    req.on('response', (h) => (head = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    const metadataOf = (h: Record<string, unknown>): Metadata => {
      const md = new Metadata();
      for (const [k, v] of Object.entries(h)) {
        if (k.startsWith(':') || typeof v !== 'string' || k === 'grpc-status' || k === 'grpc-message') continue;
        if (k.endsWith('-bin')) md.set(k, Buffer.from(v, 'base64'));
        else md.set(k, v);
      }
      return md;
    };
    req.on('trailers', (t: IncomingHttpHeaders) => {
      const all = { ...head, ...t };
      const data = Buffer.concat(chunks);
      done({
        status: Number(all['grpc-status']),
        details: decodeURIComponent(String(all['grpc-message'] ?? '')),
        trailers: metadataOf(all),
        response: data.length >= 5 ? data.subarray(5) : undefined,
      });
    });
    req.on('end', () => {
      // Trailers-only responses carry grpc-status in the headers.
      if (head['grpc-status'] !== undefined) {
        done({
          status: Number(head['grpc-status']),
          details: decodeURIComponent(String(head['grpc-message'] ?? '')),
          trailers: metadataOf(head),
        });
      }
    });
    req.on('error', (e: Error) => done({ status: -3, details: `stream error: ${e.message}`, trailers: new Metadata() }));
    req.end(grpcFrame(body));
  });
}

// ---------------------------------------------------------------- process-level failures

/**
 * The real process object: jest gives each test file a copy whose listeners never
 * fire, while unhandled rejections and uncaught exceptions are emitted on the real one.
 * (jest-circus also fails the running test on them; the watcher below names them all,
 * including those that happen between tests or after the last one.)
 */
export const realProcess = runInThisContext('process') as NodeJS.Process;

/** Records unhandled rejections and uncaught exceptions for the file's duration. */
export function watchProcessFailures(): { failures: string[]; stop(): void } {
  const failures: string[] = [];
  const onRejection = (reason: unknown) => failures.push(`unhandled rejection: ${reason instanceof Error ? reason.stack : String(reason)}`);
  const onException = (err: Error) => failures.push(`uncaught exception: ${err.stack ?? String(err)}`);
  realProcess.on('unhandledRejection', onRejection);
  realProcess.on('uncaughtException', onException);
  return {
    failures,
    stop() {
      realProcess.off('unhandledRejection', onRejection);
      realProcess.off('uncaughtException', onException);
    },
  };
}
