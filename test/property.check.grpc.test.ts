/**
 * Property-based tests of Check through the real gRPC server (one SQLite harness for the
 * file); the oracle is the documented contract, modelled in ./support/check-contract.ts.
 */
import fc from 'fast-check';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { generateKey } from '../src/keys/format';
import {
  chatSatisfies,
  credentialValues,
  envoyRequest,
  expectedOutcome,
  generators,
  identityHeader,
  outcomeOf,
  serverHeaders,
  type HeaderForm,
  type Keys,
  type WireHeaderValue,
  type WireRequest,
} from './support/check-contract';

describe('Check through gRPC (property-based)', () => {
  let h: Harness;
  let envoy: EnvoyClient;
  let keys: Keys;
  let gen: ReturnType<typeof generators>;

  beforeAll(async () => {
    h = await startHarness('sqlite');
    envoy = new EnvoyClient(h.app.authzPort);
    const org = await h.root.createOrganization({ name: 'Property', rateLimitPerMinute: 0 });
    const active = await h.root.createKey({ organizationId: org.id, name: 'active', scopes: ['chat'] });
    const revoked = await h.root.createKey({ organizationId: org.id, name: 'revoked', scopes: ['chat'] });
    await h.root.revokeKey({ id: revoked.key!.id, reason: 'property test' });
    keys = { active: active.secret, activeId: active.key!.id, orgId: org.id, revoked: revoked.secret, unknown: generateKey('live') };
    gen = generators(keys);
  });
  afterAll(async () => {
    envoy?.close();
    await h?.stop();
  });

  /** A follow-up valid Check: the server still answers and still allows the active key. */
  async function stillServing(): Promise<void> {
    const r = await envoy.check({ headers: { 'x-api-key': keys.active } });
    expect(outcomeOf(r)).toEqual({ allow: true });
  }

  it('self-check: the three keys are decided as set up', async () => {
    const out = async (key: string) => outcomeOf(await envoy.check({ headers: { authorization: `Bearer ${key}` } }));
    expect(await out(keys.active)).toEqual({ allow: true });
    expect(await out(keys.revoked)).toEqual({ allow: false, code: 'revoked_api_key' });
    expect(await out(keys.unknown)).toEqual({ allow: false, code: 'invalid_api_key' });
  });

  it('answers every random request with status set, exactly one of denied/ok, and allows only the active key alone with a satisfied scope', async () => {
    const form = fc.constantFrom<HeaderForm>('headers', 'raw_value', 'value', 'both');
    await fc.assert(
      fc.asyncProperty(gen.headerList, form, gen.contextExtensions, async (list, f, ext) => {
        const req = envoyRequest(list, f, ext);
        const r = await envoy.raw(req);
        const got = outcomeOf(r);
        const seen = serverHeaders(req);
        const values = credentialValues(seen);
        if (got.allow) {
          // The security property, in plain terms.
          expect(values.length).toBeGreaterThan(0);
          expect(values.every((v) => v === keys.active)).toBe(true);
          expect(chatSatisfies(ext)).toBe(true);
          expect(identityHeader(r, 'x-keyward-key-id')).toBe(keys.activeId);
          expect(identityHeader(r, 'x-keyward-org-id')).toBe(keys.orgId);
          expect(identityHeader(r, 'x-keyward-scopes')).toBe('chat');
        }
        expect(got).toEqual(expectedOutcome(seen, ext, keys));
      }),
      { numRuns: 200 },
    );
    await stillServing();
  });

  it('survives random raw requests (nesting, ~100 KB strings, 1000 headers, invalid UTF-8) and never allows without the active key', async () => {
    const bigString = fc
      .tuple(fc.nat(100_000), fc.constantFrom('a', 'é', ' ', ',', 'Bearer ', '\u00ff', keys.active))
      .map(([n, s]) => s.repeat(Math.ceil(n / s.length)).slice(0, n));
    // Strings that are not valid UTF-16 (lone surrogates) reach the wire as invalid UTF-8.
    const loneSurrogates = fc.string({ unit: fc.nat(0xffff).map((c) => String.fromCharCode(c)), maxLength: 20 });
    const str = fc.oneof(
      { weight: 4, arbitrary: fc.string({ maxLength: 20 }) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
      { weight: 1, arbitrary: bigString },
    );
    const invalidUtf8 = fc.oneof(
      fc.uint8Array({ maxLength: 60 }).map((u) => Buffer.from(u)),
      fc.constantFrom([0xff], [0xc3], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]).map((b) => Buffer.from(b)),
    );
    // A credential header entry of header_map, in any of its forms.
    const credEntry = fc
      .tuple(
        fc.oneof(gen.placed(keys.active), gen.placed(keys.revoked), fc.tuple(gen.credName, gen.anyValue)),
        fc.constantFrom<HeaderForm>('raw_value', 'value', 'both'),
        invalidUtf8,
        fc.boolean(),
      )
      .map(([[key, v], f, junk, appendJunk]): WireHeaderValue => {
        const raw = appendJunk ? Buffer.concat([Buffer.from(v, 'latin1'), junk]) : Buffer.from(v, 'latin1');
        if (f === 'value') return { key, value: v };
        if (f === 'raw_value') return { key, raw_value: raw };
        return { key, value: v, raw_value: raw };
      });
    const otherEntry = fc.record(
      {
        key: fc.oneof(
          gen.otherName,
          loneSurrogates.map((s) => `x-${s}\ud800`),
        ),
        value: fc.oneof(str, loneSurrogates),
        raw_value: fc.oneof(
          invalidUtf8,
          bigString.map((s) => Buffer.from(s, 'latin1')),
        ),
      },
      { requiredKeys: ['key'] },
    );
    const manyHeaders = fc
      .tuple(
        fc.oneof({ withCrossShrink: true }, fc.integer({ min: 0, max: 5 }), fc.integer({ min: 900, max: 1000 })),
        fc.string({ maxLength: 6 }),
      )
      .map(([n, s]) =>
        Array.from({ length: n }, (_, i): WireHeaderValue => ({ key: `x-h-${i}`, raw_value: Buffer.from(`${s}${i}`, 'latin1') })),
      );
    const headerMap = fc
      .tuple(manyHeaders, fc.array(otherEntry, { maxLength: 4 }), fc.array(credEntry, { maxLength: 3 }), fc.nat())
      .map(([many, other, cred, at]) => {
        const list = [...other, ...many];
        list.splice(at % (list.length + 1), 0, ...cred);
        return { headers: list };
      });
    const headersMap = fc
      .tuple(
        fc.dictionary(fc.oneof(gen.otherName, loneSurrogates), fc.oneof(str, loneSurrogates), { maxKeys: 6 }),
        fc.array(fc.oneof(gen.placed(keys.active), fc.tuple(gen.credName, gen.anyValue)), { maxLength: 2 }),
      )
      .map(([other, cred]) => ({ ...other, ...Object.fromEntries(cred) }));
    const struct: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.record({ string_value: str }),
        fc.record({ number_value: fc.double({ noNaN: true }) }),
        fc.record({ bool_value: fc.boolean() }),
        fc.record({ null_value: fc.constant(0) }),
        fc.record({ struct_value: tie('struct') }),
        fc.record({ list_value: fc.record({ values: fc.array(tie('value'), { maxLength: 3 }) }) }),
      ),
      struct: fc.record({ fields: fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 3 }) }),
    })).struct;
    const peer = fc.record(
      {
        address: fc.oneof(
          fc.record({ socket_address: fc.record({ address: str, port_value: fc.nat(65535) }, { requiredKeys: [] }) }),
          fc.record({ pipe: fc.record({ path: str }) }),
        ),
        service: str,
        labels: fc.dictionary(fc.string({ maxLength: 8 }), str, { maxKeys: 3 }),
        principal: str,
        certificate: str,
      },
      { requiredKeys: [] },
    );
    const http = fc.record(
      {
        id: str,
        method: fc.oneof(fc.constantFrom('GET', 'POST', ''), str),
        headers: headersMap,
        header_map: fc.oneof({ weight: 4, arbitrary: headerMap }, fc.constant({}), fc.constant({ headers: [] }), fc.constant(undefined)),
        path: str,
        host: str,
        scheme: str,
        query: str,
        fragment: str,
        // int64. Beyond 2^53 the generated decoder (forceLong=number) refuses it, and keyward
        // answers INVALID_ARGUMENT (invalid_argument, field request); Envoy never sends such sizes.
        size: fc.oneof(
          { weight: 9, arbitrary: fc.constantFrom('0', '-1', String(Number.MAX_SAFE_INTEGER), String(-Number.MAX_SAFE_INTEGER)) },
          { weight: 1, arbitrary: fc.constantFrom('9007199254740993', '9223372036854775807') },
        ),
        protocol: str,
        body: fc.oneof(str, bigString),
        raw_body: invalidUtf8,
      },
      { requiredKeys: ['headers', 'header_map'] },
    );
    const rawRequest = fc.record(
      {
        attributes: fc.record(
          {
            source: peer,
            destination: peer,
            request: fc.oneof(
              {
                weight: 1,
                arbitrary: fc.record({ time: fc.record({ seconds: fc.nat(), nanos: fc.nat(999_999_999) }) }, { requiredKeys: [] }),
              },
              {
                weight: 8,
                arbitrary: fc.record(
                  { time: fc.record({ seconds: fc.nat(), nanos: fc.nat(999_999_999) }), http },
                  { requiredKeys: ['http'] },
                ),
              },
            ),
            context_extensions: gen.contextExtensions,
            metadata_context: fc.record({ filter_metadata: fc.dictionary(fc.string({ maxLength: 8 }), struct, { maxKeys: 2 }) }),
            route_metadata_context: fc.record({
              typed_filter_metadata: fc.dictionary(fc.string({ maxLength: 8 }), fc.record({ type_url: str, value: invalidUtf8 }), {
                maxKeys: 2,
              }),
            }),
            tls_session: fc.record({ sni: str }),
          },
          { requiredKeys: ['request'] },
        ),
        // Unknown fields: not on the wire, ignored by the encoder.
        unknown_field: str,
      },
      { requiredKeys: ['attributes'] },
    ) as fc.Arbitrary<WireRequest>;
    const anyRequest = fc.oneof({ weight: 19, arbitrary: rawRequest }, { weight: 1, arbitrary: fc.constant<WireRequest>({}) });

    await fc.assert(
      fc.asyncProperty(anyRequest, async (req) => {
        const size = req.attributes?.request?.http?.size;
        if (typeof size === 'string' && !Number.isSafeInteger(Number(size))) {
          // Undecodable by the generated code: a clear gRPC error, never a decision; the server keeps serving.
          const err = await envoy.raw(req).then(
            () => undefined,
            (e: { code: number; metadata: { get(k: string): unknown[] } }) => e,
          );
          expect(err?.code).toBe(3);
          expect(err?.metadata.get('x-error-code')).toEqual(['invalid_argument']);
          await stillServing();
          return;
        }
        const r = await envoy.raw(req);
        const got = outcomeOf(r);
        const seen = serverHeaders(req);
        if (got.allow) {
          const values = credentialValues(seen);
          expect(values.length).toBeGreaterThan(0);
          expect(values.every((v) => v === keys.active)).toBe(true);
          expect(identityHeader(r, 'x-keyward-key-id')).toBe(keys.activeId);
        }
        expect(got).toEqual(expectedOutcome(seen, req.attributes?.context_extensions, keys));
        await stillServing();
      }),
      { numRuns: 100 },
    );
  });
});
