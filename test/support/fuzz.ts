/**
 * Shared pieces of the fuzz tests (test/fuzz.*.test.ts): what a well-formed Check
 * answer is (docs/envoy-istio.md, "What Check returns"), generators of junk headers and broken
 * protobuf, and the liveness probe run after every batch.
 */
import fc from 'fast-check';
import { Metadata } from '@grpc/grpc-js';
import { CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth';
import { ErrorInfo } from '../../src/gen/google/rpc/error_details';
import { ERROR_TABLE, WWW_AUTHENTICATE, WWW_AUTHENTICATE_MISSING, type DenyCode, type ErrorCode } from '../../src/errors/codes';
import type { Config } from '../../src/config';
import { secretsIn, type Harness } from './harness';
import { checkRequest, keywardError, tag, varint, WT, type RawClient, type RawResult } from './raw-grpc';

export const CHECK = '/envoy.service.auth.v3.Authorization/Check';
export const ACCESS_LOG = '/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs';

/** The deny codes docs/envoy-istio.md "What Check returns" documents, with their HTTP status. */
export const DENY_CODES: readonly DenyCode[] = [
  'missing_api_key',
  'invalid_api_key',
  'ambiguous_credentials',
  'revoked_api_key',
  'expired_api_key',
  'disabled_api_key',
  'organization_inactive',
  'insufficient_scope',
  'rate_limit_exceeded',
  'monthly_quota_exceeded',
  'service_unavailable',
];
const DOCUMENTED_HTTP = new Set([401, 403, 429, 503]);

export type CheckOutcome =
  | { allow: true; response: CheckResponse }
  | { allow: false; code: DenyCode; response: CheckResponse }
  | { allow: false; grpcError: ErrorCode | 'message_too_large' | 'transport' };

/** Which gRPC failures a Check may answer with in a given test. */
export interface CheckFailuresAllowed {
  /** INVALID_ARGUMENT, invalid_argument, field `request`: bytes that are not a CheckRequest. */
  undecodable?: boolean;
  /** RESOURCE_EXHAUSTED from grpc-js for a message above 4 MiB. */
  messageTooLarge?: boolean;
  /** RESOURCE_EXHAUSTED, metadata_too_large; and Node's own refusal of too many header fields. */
  metadataTooLarge?: boolean;
}

/**
 * Asserts that a Check's answer is well formed and says what it decided. Throws (a
 * failed expectation) on anything else: an undocumented gRPC status, a response that
 * does not decode, a denial without its documented status, headers, body or details,
 * or a secret of the test in the response.
 */
export function checkOutcome(r: RawResult, allowed: CheckFailuresAllowed, config: Pick<Config, 'hashSecret' | 'adminToken'>): CheckOutcome {
  if (r.status !== 0) {
    const e = keywardError(r);
    const text = `${r.details} ${e.trailerCode} ${JSON.stringify(e.info ?? {})}`;
    expect(secretsIn(text, config)).toEqual([]);
    if (allowed.undecodable && r.status === 3) {
      expect(e.trailerCode).toBe('invalid_argument');
      expect(e.info).toMatchObject({ reason: 'invalid_argument', domain: 'keyward', metadata: { field: 'request' } });
      return { allow: false, grpcError: 'invalid_argument' };
    }
    if (allowed.messageTooLarge && r.status === 8 && /^Received message larger than max \(\d+ vs 4194304\)$/.test(r.details))
      return { allow: false, grpcError: 'message_too_large' };
    if (allowed.metadataTooLarge && r.status === 8) {
      if (e.trailerCode === '') return { allow: false, grpcError: 'transport' }; // Node's HTTP/2 refused the header list
      expect(e.trailerCode).toBe('metadata_too_large');
      expect(e.info?.reason).toBe('metadata_too_large');
      return { allow: false, grpcError: 'metadata_too_large' };
    }
    throw new Error(`Check failed with an undocumented gRPC status ${r.status} (${r.details}, code ${e.trailerCode || 'none'})`);
  }
  expect(r.response).toBeDefined();
  const res = CheckResponse.decode(r.response!);
  expect(secretsIn(JSON.stringify(CheckResponse.toJSON(res)), config)).toEqual([]);
  expect(res.status).toBeDefined();
  if (res.status!.code === 0) {
    expect(res.okResponse).toBeDefined();
    expect(res.deniedResponse).toBeUndefined();
    for (const o of [...res.okResponse!.headers, ...res.okResponse!.responseHeadersToAdd]) expect(o.append).toBe(false);
    return { allow: true, response: res };
  }
  expect(res.okResponse).toBeUndefined();
  const d = res.deniedResponse;
  expect(d).toBeDefined();
  const http: number = d!.status?.code ?? 0;
  expect(DOCUMENTED_HTTP.has(http)).toBe(true);
  const headers = new Map<string, string>();
  for (const o of d!.headers) {
    expect(o.append).toBe(false);
    headers.set(o.header!.key, o.header!.value);
  }
  const code = headers.get('x-keyward-error-code') as DenyCode | undefined;
  expect(DENY_CODES).toContain(code);
  const wire = ERROR_TABLE[code!];
  expect(http).toBe(wire.http);
  expect(res.status!.code).toBe(wire.grpc);
  expect(res.status!.message).toBe(wire.message);
  expect(headers.get('content-type')).toBe('application/json');
  if (http === 401) expect(headers.get('www-authenticate')).toBe(code === 'missing_api_key' ? WWW_AUTHENTICATE_MISSING : WWW_AUTHENTICATE);
  if (code === 'insufficient_scope')
    expect(headers.get('www-authenticate')).toMatch(/^Bearer realm="keyward", error="insufficient_scope", scope="[^"]*"$/);
  else if (http !== 401) expect(headers.get('www-authenticate')).toBeUndefined();
  if (http === 429 || http === 503) expect(Number(headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  const info = res.status!.details.find((x) => x.typeUrl === 'type.googleapis.com/google.rpc.ErrorInfo');
  expect(info).toBeDefined();
  expect(ErrorInfo.decode(info!.value)).toMatchObject({ reason: code, domain: 'keyward' });
  const body = JSON.parse(d!.body) as { error?: { code?: string; message?: string } };
  expect(body.error?.code).toBe(code);
  expect(body.error?.message).toBe(wire.message);
  return { allow: false, code: code!, response: res };
}

/**
 * The liveness probe after a batch: the authz server still allows a known-good key,
 * the admin server still answers root, and no unhandled rejection or uncaught
 * exception has happened.
 */
export async function stillServing(h: Harness, authz: RawClient, activeKey: string, failures: string[]): Promise<void> {
  const r = await authz.unary(
    CHECK,
    checkRequest({ method: 'GET', path: '/v1/x', host: 'api.example.com', headers: [['x-api-key', activeKey]] }),
  );
  expect(checkOutcome(r, {}, h.config).allow).toBe(true);
  await expect(h.root.getRateLimiterStats({})).resolves.toBeDefined();
  expect(failures).toEqual([]);
}

// ---------------------------------------------------------------- generators

/** Bytes that are not valid UTF-8: lone continuation bytes, overlongs, surrogates, truncated sequences, 0xff. */
export const invalidUtf8 = fc.oneof(
  fc
    .constantFrom(
      [0xff],
      [0xc3],
      [0x80],
      [0xed, 0xa0, 0x80],
      [0xc0, 0xaf],
      [0xf4, 0x90, 0x80, 0x80],
      [0xe2, 0x82],
      [0xf8, 0x88, 0x80, 0x80, 0x80],
    )
    .map((b) => Buffer.from(b)),
  fc.uint8Array({ minLength: 1, maxLength: 40 }).map((u) => Buffer.concat([Buffer.from(u), Buffer.from([0xfe])])),
);

/** A big string (up to `max` characters) of one repeated piece. */
export function bigString(max: number, pieces: string[] = ['a', 'é', ' ', ',', 'Bearer ', '\u0000', '\u{1f600}']): fc.Arbitrary<string> {
  return fc.tuple(fc.integer({ min: 1, max }), fc.constantFrom(...pieces)).map(([n, s]) => s.repeat(Math.ceil(n / s.length)).slice(0, n));
}

/** Strings or raw bytes: empty, short, full Unicode, control characters, invalid UTF-8, big. */
export function junkText(maxBig = 70_000): fc.Arbitrary<string | Buffer> {
  return fc.oneof(
    { weight: 5, arbitrary: fc.string({ maxLength: 24 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
    { weight: 1, arbitrary: fc.constant('') },
    { weight: 2, arbitrary: invalidUtf8 },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.string({ maxLength: 10 }), invalidUtf8, fc.string({ maxLength: 10 }))
        .map(([a, b, c]) => Buffer.concat([Buffer.from(a), b, Buffer.from(c)])),
    },
    { weight: 1, arbitrary: bigString(maxBig) },
  );
}

/** Header names: random, reserved, look-alikes of keyward's own and of credential headers. */
export function junkHeaderName(opts: { credentialNames: boolean }): fc.Arbitrary<string | Buffer> {
  const names = [
    ':path',
    ':authority',
    ':method',
    'host',
    'x-request-id',
    'x-keyward-key-id',
    'X-Keyward-Org-Id',
    'x-keyward-scopes',
    'x-keyward-',
    'cookie',
    'content-length',
    'proxy-authorization',
    'x-api-key-2',
    'authorization2',
  ];
  if (opts.credentialNames) names.push('authorization', 'Authorization', 'x-api-key', 'X-API-KEY', 'AUTHORIZATION');
  const base = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...names) }, { weight: 4, arbitrary: junkText(1000) });
  if (opts.credentialNames) return base;
  // A name the server lower-cases (ASCII only) to a credential header is not junk.
  return base.filter(
    (n) =>
      !['authorization', 'x-api-key'].includes(
        Buffer.from(n)
          .toString('latin1')
          .replace(/[A-Z]/g, (c) => c.toLowerCase()),
      ),
  );
}

/** Header values: junk, bearer-shaped, comma lists, key-shaped strings that are not keys. */
export function junkHeaderValue(shapes: string[]): fc.Arbitrary<string | Buffer> {
  return fc.oneof(
    { weight: 4, arbitrary: junkText() },
    { weight: 2, arbitrary: fc.constantFrom(...shapes) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom('Bearer ', 'bearer\t', 'Basic ', 'Bearer', ''), junkText(200))
        .map(([p, v]) => (typeof v === 'string' ? p + v : Buffer.concat([Buffer.from(p), v]))),
    },
  );
}

/** One header, in one of the three places a CheckRequest can carry it. */
export type JunkHeader = { where: 'headers' | 'value' | 'raw' | 'both'; name: string | Buffer; value: string | Buffer };

/** Spreads headers over a CheckRequest: `headers` entries go to the map unless any header_map entry exists. */
export function placeHeaders(list: JunkHeader[]): {
  headers: [string | Buffer, string | Buffer][];
  headerMap?: { key: string | Buffer; value?: string | Buffer; raw?: string | Buffer }[];
} {
  const headers: [string | Buffer, string | Buffer][] = [];
  const headerMap: { key: string | Buffer; value?: string | Buffer; raw?: string | Buffer }[] = [];
  for (const h of list) {
    if (h.where === 'headers') headers.push([h.name, h.value]);
    else if (h.where === 'value') headerMap.push({ key: h.name, value: h.value });
    else if (h.where === 'raw') headerMap.push({ key: h.name, raw: h.value });
    else headerMap.push({ key: h.name, value: h.value, raw: h.value });
  }
  return headerMap.length > 0 ? { headers, headerMap } : { headers };
}

// ---------------------------------------------------------------- broken protobuf

/** Ways to break a message: every one keeps the bytes a plausible gRPC payload. */
export type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'unknown-field'; field: number; wireType: 0 | 1 | 2 | 5 }
  | { kind: 'wrong-wire-type'; field: number; wireType: number }
  | { kind: 'enormous-varint'; field: number; bytes: number }
  | { kind: 'length-beyond'; field: number }
  | { kind: 'group'; field: number }
  | { kind: 'field-zero' };

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }) }),
  fc.record({
    kind: fc.constant('unknown-field' as const),
    field: fc.integer({ min: 14, max: 2 ** 29 - 1 }),
    wireType: fc.constantFrom(0 as const, 1 as const, 2 as const, 5 as const),
  }),
  fc.record({ kind: fc.constant('wrong-wire-type' as const), field: fc.integer({ min: 1, max: 13 }), wireType: fc.constantFrom(0, 1, 5) }),
  fc.record({
    kind: fc.constant('enormous-varint' as const),
    field: fc.integer({ min: 1, max: 13 }),
    bytes: fc.integer({ min: 10, max: 40 }),
  }),
  fc.record({ kind: fc.constant('length-beyond' as const), field: fc.integer({ min: 1, max: 13 }) }),
  fc.record({ kind: fc.constant('group' as const), field: fc.integer({ min: 1, max: 13 }) }),
  fc.record({ kind: fc.constant('field-zero' as const) }),
);

/** A field-level mutation goes at the front, the end or inside the outermost message's first sub-message. */
export function mutate(bytes: Buffer, m: Mutation): Buffer {
  const at = (n: number) => (bytes.length === 0 ? 0 : n % (bytes.length + 1));
  switch (m.kind) {
    case 'truncate':
      return bytes.subarray(0, at(m.at) === bytes.length ? Math.max(0, bytes.length - 1) : at(m.at));
    case 'flip': {
      if (bytes.length === 0) return Buffer.from([m.xor]);
      const b = Buffer.from(bytes);
      const i = m.at % b.length;
      b[i] = b[i]! ^ m.xor;
      return b;
    }
    case 'insert': {
      const i = at(m.at);
      return Buffer.concat([bytes.subarray(0, i), Buffer.from(m.bytes), bytes.subarray(i)]);
    }
    case 'unknown-field': {
      const payload =
        m.wireType === 0
          ? varint(2n ** 63n)
          : m.wireType === 1
            ? Buffer.alloc(8, 0xab)
            : m.wireType === 5
              ? Buffer.alloc(4, 0xcd)
              : Buffer.concat([varint(3), Buffer.from([0xff, 0x00, 0x80])]);
      return Buffer.concat([bytes, tag(m.field, m.wireType), payload]);
    }
    case 'wrong-wire-type': {
      // Field 1 (attributes, a message) and the rest of keyward's fields as a varint or fixed.
      const payload = m.wireType === 0 ? varint(12345) : m.wireType === 1 ? Buffer.alloc(8, 1) : Buffer.alloc(4, 1);
      return Buffer.concat([tag(m.field, m.wireType), payload, bytes]);
    }
    case 'enormous-varint':
      // Continuation bits on every byte but the last: up to 40 bytes (more than 10 is never valid).
      return Buffer.concat([bytes, tag(m.field, WT.VARINT), Buffer.alloc(m.bytes - 1, 0xff), Buffer.from([0x01])]);
    case 'length-beyond':
      return Buffer.concat([bytes, tag(m.field, WT.LEN), varint(1_000_000), Buffer.from('short')]);
    case 'group':
      return Buffer.concat([tag(m.field, WT.SGROUP), bytes, tag(m.field, WT.EGROUP)]);
    case 'field-zero':
      return Buffer.concat([Buffer.from([0x00, 0x01]), bytes]);
  }
}

/** Random gRPC metadata: names legal for gRPC, values printable ASCII, sizes around the 16 KiB limit. */
export const junkMetadata: fc.Arbitrary<Metadata> = fc
  .tuple(
    fc.array(fc.tuple(fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,30}$/), fc.stringMatching(/^[ -~]{0,40}$/)), { maxLength: 140 }),
    fc.option(fc.tuple(fc.stringMatching(/^x-[a-z]{1,8}$/), fc.integer({ min: 1, max: 40_000 })), { nil: undefined }),
  )
  .map(([entries, big]) => {
    const md = new Metadata();
    for (const [k, v] of entries) {
      if (
        [
          'content-type',
          'te',
          'user-agent',
          'grpc-timeout',
          'grpc-encoding',
          'grpc-accept-encoding',
          'accept-encoding',
          'host',
          'connection',
          'upgrade',
          'keep-alive',
          'transfer-encoding',
          'proxy-connection',
        ].includes(k) ||
        k.startsWith('grpc-') ||
        k.endsWith('-bin')
      )
        continue;
      md.add(k, v);
    }
    if (big) md.set(big[0], 'm'.repeat(big[1]));
    return md;
  });
