/**
 * The hand-coded Check codec (src/grpc/check-codec.ts, check-response-encoder.ts)
 * against the generated one:
 *  - decodeCheckAttributes(bytes) equals attributesOf(CheckRequest.decode(bytes)) for
 *    random requests, for concatenated requests (last-wins rules), and for random
 *    mutations of real request bytes that are still well formed; on any bytes it
 *    returns well-typed attributes or throws CheckDecodeError, nothing else;
 *  - an HttpRequest.size beyond ±(2^53-1) is refused by both (reason integer_too_large);
 *  - encodeCheckResponse(r) is byte-for-byte CheckResponse.encode(r).
 */
import fc from 'fast-check';
import { CheckRequest, CheckResponse } from '../src/gen/envoy/service/auth/v3/external_auth';
import { CheckDecodeError, decodeCheckAttributes } from '../src/grpc/check-codec';
import { encodeCheckResponse } from '../src/grpc/check-response-encoder';
import { setHeader } from '../src/authz/response';
import type { HeaderValueOption } from '../src/gen/envoy/config/core/v3/base';
import { attributesOf } from './support/check-attributes';

const text = fc.oneof(
  { weight: 5, arbitrary: fc.string({ maxLength: 12 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'authorization',
      'x-api-key',
      'X-Api-Key',
      ':path',
      ':method',
      'x-request-id',
      'x-keyward-key-id',
      '__proto__',
      '1',
      'constructor',
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.tuple(fc.nat(400), fc.constantFrom('a', 'é', '\ud800', '😀')).map(([n, s]) => s.repeat(n)) },
);
const bytes = fc.uint8Array({ maxLength: 24 });
const dict = fc.dictionary(text, text, { maxKeys: 6 });
const headerValue = fc.record({ key: text, value: text, rawValue: fc.oneof(bytes, fc.constant(new Uint8Array())) });
const http = fc.record(
  {
    id: text,
    method: text,
    headers: dict,
    path: text,
    host: text,
    scheme: text,
    query: text,
    fragment: text,
    size: fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    protocol: text,
    body: text,
    rawBody: bytes,
    headerMap: fc.option(fc.record({ headers: fc.array(headerValue, { maxLength: 6 }) }), { nil: undefined }),
  },
  { requiredKeys: [] },
);
const socketAddress = fc.record({ address: text, portValue: fc.nat({ max: 65535 }) }, { requiredKeys: [] });
const peer = fc.record(
  {
    address: fc.record({ socketAddress, pipe: fc.record({ path: text }) }, { requiredKeys: [] }),
    service: text,
    labels: dict,
    principal: text,
    certificate: text,
  },
  { requiredKeys: [] },
);
const request = fc.record(
  {
    attributes: fc.option(
      fc.record(
        {
          source: peer,
          destination: peer,
          request: fc.record({ time: fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }), http }, { requiredKeys: [] }),
          contextExtensions: dict,
          tlsSession: fc.record({ sni: text }),
        },
        { requiredKeys: [] },
      ),
      { nil: undefined },
    ),
  },
  { requiredKeys: [] },
);

const encode = (r: unknown) => Buffer.from(CheckRequest.encode(CheckRequest.fromPartial(r as CheckRequest)).finish());

/**
 * The hand-coded reader on arbitrary bytes: a CheckDecodeError or well-typed attributes,
 * never another exception. Where the bytes are a well-formed request (the generated
 * decoder reads them and re-encodes them to the same bytes), both must agree. On
 * malformed bytes they may differ: the generated decoder does not check that a
 * sub-message stays inside its parent, and reads on past it.
 */
function compare(b: Buffer): void {
  let got: ReturnType<typeof decodeCheckAttributes>;
  try {
    got = decodeCheckAttributes(b);
  } catch (e) {
    expect(e).toBeInstanceOf(CheckDecodeError);
    expect(['truncated', 'bad_varint', 'bad_wire_type', 'bad_field_number', 'integer_too_large']).toContain((e as CheckDecodeError).reason);
    return;
  }
  expect(typeof got.method === 'string' && typeof got.path === 'string' && typeof got.host === 'string').toBe(true);
  for (const [k, v] of got.headers) expect(typeof k === 'string' && typeof v === 'string').toBe(true);
  for (const v of Object.values(got.contextExtensions)) expect(typeof v).toBe('string');
  let decoded: CheckRequest;
  try {
    decoded = CheckRequest.decode(b);
  } catch {
    return;
  }
  if (Buffer.from(CheckRequest.encode(decoded).finish()).equals(b)) expect(got).toEqual(attributesOf(decoded));
}

/** The reason decodeCheckAttributes refuses `b` with; undefined if it reads it. */
function decodeReason(b: Buffer): string | undefined {
  try {
    decodeCheckAttributes(b);
  } catch (e) {
    return e instanceof CheckDecodeError ? e.reason : 'not a CheckDecodeError';
  }
  return undefined;
}

describe('decodeCheckAttributes', () => {
  it('reads what the generated decoder reads, for random requests', () => {
    fc.assert(
      fc.property(request, (r) => {
        const b = encode(r);
        expect(decodeCheckAttributes(b)).toEqual(attributesOf(CheckRequest.decode(b)));
      }),
      { numRuns: 400 },
    );
  });

  it('applies the same last-wins rules to a request sent twice over (concatenated bytes)', () => {
    fc.assert(
      fc.property(request, request, (a, b) => {
        const bytes2 = Buffer.concat([encode(a), encode(b)]);
        expect(decodeCheckAttributes(bytes2)).toEqual(attributesOf(CheckRequest.decode(bytes2)));
      }),
      { numRuns: 200 },
    );
  });

  it('never throws anything but CheckDecodeError on mutated or truncated bytes, and agrees whenever both decode', () => {
    fc.assert(
      fc.property(request, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat(), (r, flips, cut) => {
        const b = encode(r);
        for (const [at, v] of flips) if (b.length > 0) b[at % b.length] = v;
        compare(b);
        if (b.length > 0) compare(b.subarray(0, cut % b.length));
      }),
      { numRuns: 500 },
    );
    for (let i = 0; i < 300; i++) compare(Buffer.from(Array.from({ length: i % 40 }, (_, j) => (i * 31 + j * 17) & 0xff)));
  });

  it('refuses an HttpRequest.size beyond ±(2^53-1), as the generated decoder does', () => {
    for (const size of ['9007199254740992', '9223372036854775807', '-9007199254740993']) {
      const b = encode({ attributes: { request: { http: { size: size as unknown as number } } } });
      expect(() => CheckRequest.decode(b)).toThrow();
      expect(() => decodeCheckAttributes(b)).toThrow(/2\^53/);
      expect(decodeReason(b)).toBe('integer_too_large');
    }
    for (const size of [Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, -1, 0]) {
      const b = encode({ attributes: { request: { http: { size, path: '/p' } } } });
      expect(decodeCheckAttributes(b).path).toBe('/p');
    }
  });

  it('an empty message is a request without attributes', () => {
    expect(decodeCheckAttributes(Buffer.alloc(0))).toEqual(attributesOf(CheckRequest.decode(Buffer.alloc(0))));
  });
});

describe('encodeCheckResponse', () => {
  const header = fc.oneof(
    fc.tuple(text, text).map(([k, v]) => setHeader(k, v)),
    fc.record({
      header: fc.option(fc.record({ key: text, value: text, rawValue: fc.oneof(bytes, fc.constant(Buffer.alloc(0))) }), { nil: undefined }),
      append: fc.option(fc.boolean(), { nil: undefined }),
      appendAction: fc.integer({ min: 0, max: 3 }),
      keepEmptyValue: fc.boolean(),
    }),
  );
  const strings = fc.dictionary(text, text, { maxKeys: 4 });
  const metadata = fc.oneof(
    { weight: 4, arbitrary: strings },
    fc.constant(undefined),
    fc.dictionary(text, fc.oneof(text, fc.double(), fc.boolean()), { maxKeys: 3 }),
  );
  const status = fc.record({
    code: fc.oneof(fc.integer({ min: 0, max: 16 }), fc.integer({ min: -2, max: 2 ** 31 - 1 })),
    message: text,
    details: fc.array(fc.record({ typeUrl: text, value: bytes }), { maxLength: 2 }),
  });
  const ok = fc.record({
    headers: fc.array(header, { maxLength: 5 }),
    headersToRemove: fc.array(text, { maxLength: 3 }),
    dynamicMetadata: metadata,
    responseHeadersToAdd: fc.array(header, { maxLength: 5 }),
    queryParametersToSet: fc.oneof(
      { weight: 5, arbitrary: fc.constant([]) },
      fc.array(fc.record({ key: text, value: text }), { maxLength: 2 }),
    ),
    queryParametersToRemove: fc.array(text, { maxLength: 2 }),
  });
  const denied = fc.record({
    status: fc.option(fc.record({ code: fc.integer({ min: 0, max: 599 }) }), { nil: undefined }),
    headers: fc.array(header, { maxLength: 6 }),
    body: fc.oneof(text, fc.string({ maxLength: 3000 })),
  });
  const response = fc.record(
    { status, deniedResponse: denied, okResponse: ok, errorResponse: denied, dynamicMetadata: metadata },
    { requiredKeys: [] },
  );

  it('writes exactly the bytes of the generated encoder', () => {
    fc.assert(
      fc.property(response, (r) => {
        const res = {
          status: undefined,
          deniedResponse: undefined,
          okResponse: undefined,
          errorResponse: undefined,
          dynamicMetadata: undefined,
          ...r,
        } as CheckResponse;
        expect(encodeCheckResponse(res).equals(Buffer.from(CheckResponse.encode(res).finish()))).toBe(true);
      }),
      { numRuns: 600 },
    );
  });

  it('reuses the bytes of frozen parts, under their own field only, and still writes the generated bytes', () => {
    const deepFreeze = <T extends object>(o: T): T => {
      for (const v of Object.values(o)) if (v && typeof v === 'object' && !ArrayBuffer.isView(v)) deepFreeze(v as object);
      return Object.freeze(o);
    };
    fc.assert(
      fc.property(fc.array(header, { minLength: 1, maxLength: 4 }), strings, header, (list, struct, single) => {
        const clone = (h: HeaderValueOption): HeaderValueOption => ({
          ...h,
          header: h.header && { ...h.header, rawValue: Buffer.from(h.header.rawValue) },
        });
        const shared = deepFreeze((list as HeaderValueOption[]).map(clone));
        const meta = deepFreeze({ ...struct });
        const one = deepFreeze(clone(single as HeaderValueOption));
        const okWith = (headers: HeaderValueOption[], toAdd: HeaderValueOption[]): CheckResponse => ({
          status: { code: 0, message: '', details: [] },
          deniedResponse: undefined,
          okResponse: {
            headers,
            headersToRemove: [],
            dynamicMetadata: undefined,
            responseHeadersToAdd: toAdd,
            queryParametersToSet: [],
            queryParametersToRemove: [],
          },
          errorResponse: undefined,
          dynamicMetadata: meta,
        });
        // The same frozen list as upstream headers, then as response headers (another field
        // tag), then inside a denial; twice each, so that the second write is the reused one.
        const responses: CheckResponse[] = [
          okWith(shared, [one]),
          okWith(shared, [one]),
          okWith([one], shared),
          okWith([one], shared),
          {
            status: { code: 7, message: 'no', details: [] },
            deniedResponse: { status: { code: 403 }, headers: shared, body: 'b' },
            okResponse: undefined,
            errorResponse: undefined,
            dynamicMetadata: meta,
          },
        ];
        for (const res of responses) expect(encodeCheckResponse(res).equals(Buffer.from(CheckResponse.encode(res).finish()))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('handles nested lengths that need several varint bytes', () => {
    const long = 'x'.repeat(70_000);
    const res: CheckResponse = {
      status: { code: 7, message: long, details: [] },
      deniedResponse: { status: { code: 403 }, headers: [setHeader('x-long', long)], body: long },
      okResponse: undefined,
      errorResponse: undefined,
      dynamicMetadata: { error_code: long },
    };
    expect(encodeCheckResponse(res).equals(Buffer.from(CheckResponse.encode(res).finish()))).toBe(true);
  });
});
