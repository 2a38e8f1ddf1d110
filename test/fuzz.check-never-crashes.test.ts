/**
 * Fuzzing envoy.service.auth.v3.Authorization/Check through the real gRPC server
 * (SQLite harness, port 0) with bytes nobody should send: random bytes, broken
 * protobuf (truncated, flipped, wrong wire types, unknown fields, enormous varints,
 * lengths beyond the message, groups, field 0), invalid UTF-8 in every string field,
 * junk and oversized headers, 10,000 headers in `headers` and in `header_map`,
 * 1 MiB names, values and paths, messages at the 4 MiB limit, google.protobuf.Struct
 * metadata nested 100 and 10,000 deep, and random gRPC metadata around its 16 KiB
 * limit.
 *
 * Properties: every Check is answered, either with a well-formed decision
 * (support/fuzz.ts checkOutcome) or with one of the documented gRPC failures; none of
 * these requests (no valid key in them) is ever allowed; afterwards the servers still
 * allow a known-good key and answer KeyAdmin; no unhandled rejection or uncaught
 * exception happened in the process.
 */
import fc from 'fast-check';
import { Metadata } from '@grpc/grpc-js';
import { startHarness, type Harness } from './support/harness';
import { checkRequest, deepStruct, filterMetadata, ld, RawClient, tag, varint, vi, watchProcessFailures, WT } from './support/raw-grpc';
import {
  CHECK,
  checkOutcome,
  junkHeaderName,
  junkHeaderValue,
  junkMetadata,
  junkText,
  mutate,
  mutation,
  placeHeaders,
  stillServing,
  type JunkHeader,
} from './support/fuzz';
import { generateKey } from '../src/keys/format';

const MiB = 1024 * 1024;

describe('Check fuzzing: the server never crashes and never allows without a key', () => {
  let h: Harness;
  let client: RawClient;
  let active: string;
  let revoked: string;
  let watch: ReturnType<typeof watchProcessFailures>;
  /** Credential-shaped values that are not a valid key. */
  let shapes: string[];

  beforeAll(async () => {
    watch = watchProcessFailures();
    h = await startHarness('sqlite');
    client = new RawClient(h.app.authzPort);
    const org = await h.root.createOrganization({ name: 'Fuzz', rateLimitPerMinute: 0 });
    active = (await h.root.createKey({ organizationId: org.id, name: 'active', scopes: ['chat'] })).secret;
    const r = await h.root.createKey({ organizationId: org.id, name: 'revoked', scopes: ['chat'] });
    await h.root.revokeKey({ id: r.key!.id, reason: 'fuzz' });
    revoked = r.secret;
    const unknown = generateKey('live');
    shapes = [
      revoked,
      `Bearer ${revoked}`,
      unknown,
      `Bearer ${unknown}`,
      active.slice(0, -1) + (active.endsWith('a') ? 'b' : 'a'),
      active.slice(0, 20),
      `${active}x`,
      'kw_live_',
      'Bearer',
      'Bearer ',
      ',,,',
      `Bearer ${revoked}, Bearer ${unknown}`,
    ];
  });
  afterAll(async () => {
    client?.close();
    watch?.stop();
    await h?.stop();
    expect(watch.failures).toEqual([]);
  });

  const probe = () => stillServing(h, client, active, watch.failures);

  /** A header list without the active key: junk names and values, and any of the credential shapes. */
  const junkHeaders = (n: number) =>
    fc.array(
      fc.record<JunkHeader>({
        where: fc.constantFrom('headers', 'value', 'raw', 'both'),
        name: junkHeaderName({ credentialNames: true }),
        value: fc.constant(null).chain(() => junkHeaderValue(shapes)),
      }),
      { maxLength: n },
    );

  it('self-check: the active key is allowed, the revoked and unknown ones are not', async () => {
    await probe();
    for (const v of [revoked, generateKey('test'), '']) {
      const o = checkOutcome(await client.unary(CHECK, checkRequest({ headers: [['x-api-key', v]] })), {}, h.config);
      expect(o.allow).toBe(false);
    }
  });

  it('answers random bytes and broken protobuf with a decision or invalid_argument, never an allow', async () => {
    const base = fc
      .tuple(junkHeaders(6), fc.array(fc.tuple(junkText(100), junkText(100)), { maxLength: 3 }))
      .map(([hs, ext]) => checkRequest({ method: 'GET', path: '/v1/x', host: 'h', ...placeHeaders(hs), contextExtensions: ext }));
    const broken = fc.oneof(
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2000 }).map((u) => Buffer.from(u)) },
      { weight: 4, arbitrary: fc.tuple(base, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([b, ms]) => ms.reduce(mutate, b)) },
    );
    await fc.assert(
      fc.asyncProperty(broken, async (bytes) => {
        const o = checkOutcome(await client.unary(CHECK, bytes), { undecodable: true }, h.config);
        expect(o.allow).toBe(false);
      }),
      { numRuns: 300 },
    );
    await probe();
  });

  it('answers junk headers (random and oversized names and values, invalid UTF-8, all three places) with a well-formed denial', async () => {
    const request = fc.record({
      headers: junkHeaders(12),
      method: junkText(2000),
      path: junkText(2000),
      host: junkText(2000),
      ext: fc.array(fc.tuple(fc.oneof(fc.constantFrom('required_scopes', 'any_scopes'), junkText(50)), junkText(5000)), { maxLength: 3 }),
    });
    await fc.assert(
      fc.asyncProperty(request, async (q) => {
        const bytes = checkRequest({ method: q.method, path: q.path, host: q.host, ...placeHeaders(q.headers), contextExtensions: q.ext });
        const o = checkOutcome(await client.unary(CHECK, bytes), {}, h.config);
        expect(o.allow).toBe(false);
      }),
      { numRuns: 200 },
    );
    await probe();
  });

  it('answers 10,000 headers in `headers` and in `header_map` (value and raw_value) and decides by the key alone', async () => {
    const many = (i: number): [string, string] => [i % 3 === 0 ? `x-keyward-n${i}` : `x-junk-${i}`, `v${i}\u00e9`];
    const list = Array.from({ length: 10_000 }, (_, i) => many(i));
    for (const [key, allow] of [
      [active, true],
      [revoked, false],
    ] as const) {
      const forms = [
        checkRequest({ headers: [...list, ['x-api-key', key]] }),
        checkRequest({ headerMap: [...list.map(([k, v]) => ({ key: k, value: v })), { key: 'x-api-key', value: key }] }),
        checkRequest({
          headerMap: [...list.map(([k, v]) => ({ key: k, raw: Buffer.from(v, 'latin1') })), { key: 'authorization', raw: `Bearer ${key}` }],
        }),
      ];
      for (const bytes of forms) {
        const o = checkOutcome(await client.unary(CHECK, bytes), {}, h.config);
        expect(o.allow).toBe(allow);
        if (o.allow) expect(o.response.okResponse!.headersToRemove.filter((n) => n.startsWith('x-keyward-n'))).toHaveLength(3334);
        else if ('code' in o) expect(o.code).toBe('revoked_api_key');
      }
    }
    await probe();
  });

  it('answers 1 MiB names, values, paths, hosts, methods and scope lists, deciding as it would for small ones', async () => {
    const big = (c: string) => c.repeat(MiB);
    const cases: { name: string; bytes: Buffer; allow: boolean; code?: string }[] = [
      {
        name: '1 MiB header name',
        bytes: checkRequest({
          headers: [
            [big('n'), 'v'],
            ['x-api-key', active],
          ],
        }),
        allow: true,
      },
      {
        name: '1 MiB header value',
        bytes: checkRequest({
          headers: [
            ['x-junk', big('v')],
            ['x-api-key', active],
          ],
        }),
        allow: true,
      },
      {
        name: '1 MiB raw_value',
        bytes: checkRequest({
          headerMap: [
            { key: 'x-junk', raw: Buffer.alloc(MiB, 0xff) },
            { key: 'x-api-key', raw: active },
          ],
        }),
        allow: true,
      },
      { name: 'the key after 1 MiB of spaces', bytes: checkRequest({ headers: [['x-api-key', ' '.repeat(MiB) + active]] }), allow: true },
      {
        name: '1 MiB of commas around the key',
        bytes: checkRequest({ headers: [['x-api-key', ','.repeat(MiB / 2) + active + ','.repeat(MiB / 2)]] }),
        allow: true,
      },
      {
        name: '1 MiB credential',
        bytes: checkRequest({ headers: [['authorization', `Bearer ${big('k')}`]] }),
        allow: false,
        code: 'invalid_api_key',
      },
      {
        name: '1 MiB path, host and method',
        bytes: checkRequest({ method: big('G'), path: '/' + big('p'), host: big('h'), headers: [['x-api-key', active]] }),
        allow: true,
      },
      {
        name: '1 MiB required_scopes',
        bytes: checkRequest({ headers: [['x-api-key', active]], contextExtensions: [['required_scopes', 'chat,' + big('s')]] }),
        allow: false,
        code: 'insufficient_scope',
      },
      {
        name: '500,000 distinct any_scopes',
        bytes: checkRequest({
          headers: [['x-api-key', active]],
          contextExtensions: [['any_scopes', Array.from({ length: 500_000 }, (_, i) => `s${i}`).join(',') + ',chat']],
        }),
        allow: true,
      },
      {
        name: '1 MiB context extension key',
        bytes: checkRequest({ headers: [['x-api-key', active]], contextExtensions: [[big('e'), 'x']] }),
        allow: true,
      },
      {
        name: 'invalid UTF-8 in every string field',
        bytes: checkRequest({
          method: Buffer.from([0xff]),
          path: Buffer.from([0xc3]),
          host: Buffer.from([0xed, 0xa0, 0x80]),
          headers: [
            [Buffer.from([0xfe]), Buffer.from([0x80])],
            ['x-api-key', Buffer.concat([Buffer.from(active), Buffer.from([0xff])])],
          ],
          contextExtensions: [[Buffer.from([0xff]), Buffer.from([0xfe])]],
        }),
        allow: false,
        code: 'invalid_api_key',
      },
      {
        name: 'empty strings everywhere',
        bytes: checkRequest({
          method: '',
          path: '',
          host: '',
          headers: [
            ['', ''],
            ['x-api-key', ''],
          ],
          headerMap: [{ key: '', value: '', raw: '' }],
          contextExtensions: [['', '']],
        }),
        allow: false,
        code: 'missing_api_key',
      },
    ];
    for (const c of cases) {
      const o = checkOutcome(await client.unary(CHECK, c.bytes), {}, h.config);
      expect({ name: c.name, allow: o.allow, code: 'code' in o ? o.code : undefined }).toEqual({
        name: c.name,
        allow: c.allow,
        code: c.code,
      });
    }
    await probe();
  });

  it('answers a message of exactly 4 MiB and refuses one byte more with RESOURCE_EXHAUSTED', async () => {
    const at = (total: number) => {
      const head = checkRequest({ headers: [['x-api-key', active]] });
      // HttpRequest.body (field 11) pads the request; keyward skips it whole.
      let pad = total - head.length;
      for (;;) {
        const b = checkRequest({ headers: [['x-api-key', active]], extraHttp: ld(11, Buffer.alloc(pad, 0x61)) });
        if (b.length === total) return b;
        pad -= b.length - total;
      }
    };
    expect(checkOutcome(await client.unary(CHECK, at(4 * MiB)), {}, h.config).allow).toBe(true);
    expect(checkOutcome(await client.unary(CHECK, at(4 * MiB + 1)), { messageTooLarge: true }, h.config)).toEqual({
      allow: false,
      grpcError: 'message_too_large',
    });
    await probe();
  });

  it('skips google.protobuf.Struct metadata nested 100 and 10,000 deep (metadata_context, route_metadata_context)', async () => {
    for (const depth of [100, 10_000]) {
      for (const viaLists of [false, true]) {
        const md = filterMetadata('envoy.filters.http.ext_authz', deepStruct(depth, viaLists));
        for (const [key, allow] of [
          [active, true],
          [undefined, false],
        ] as const) {
          const bytes = checkRequest({ headers: key ? [['x-api-key', key]] : [], metadataContext: md, routeMetadataContext: md });
          const o = checkOutcome(await client.unary(CHECK, bytes), {}, h.config);
          expect(o.allow).toBe(allow);
          if (!o.allow && 'code' in o) expect(o.code).toBe('missing_api_key');
        }
      }
    }
    await probe();
  });

  it('refuses an HttpRequest.size beyond ±(2^53-1) and an 11-byte varint, and ignores unknown fields of every wire type', async () => {
    const withKey = (extraHttp: Buffer) => checkRequest({ headers: [['x-api-key', active]], extraHttp });
    const refused = [vi(9, 2n ** 63n), vi(9, 2n ** 53n), Buffer.concat([tag(9, WT.VARINT), Buffer.alloc(10, 0xff), Buffer.from([0x01])])];
    for (const extra of refused)
      expect(checkOutcome(await client.unary(CHECK, withKey(extra)), { undecodable: true }, h.config)).toMatchObject({
        allow: false,
        grpcError: 'invalid_argument',
      });
    const ignored = [
      vi(99, 2n ** 64n - 1n),
      Buffer.concat([tag(1000, WT.I64), Buffer.alloc(8)]),
      Buffer.concat([tag(2 ** 29 - 1, WT.I32), Buffer.alloc(4)]),
      ld(77, Buffer.from([0xff, 0xfe])),
      vi(9, -1n),
    ];
    for (const extra of ignored) expect(checkOutcome(await client.unary(CHECK, withKey(extra)), {}, h.config).allow).toBe(true);
    expect(
      checkOutcome(
        await client.unary(CHECK, Buffer.concat([checkRequest({ headers: [['x-api-key', active]] }), varint(0)])),
        { undecodable: true },
        h.config,
      ).allow,
    ).toBe(false);
    await probe();
  });

  it('answers random gRPC metadata around the 16 KiB limit with a decision or RESOURCE_EXHAUSTED', async () => {
    await fc.assert(
      fc.asyncProperty(junkMetadata, fc.boolean(), async (md: Metadata, withKey) => {
        const bytes = checkRequest({ headers: withKey ? [['x-api-key', revoked]] : [] });
        const o = checkOutcome(await client.unary(CHECK, bytes, md), { metadataTooLarge: true }, h.config);
        expect(o.allow).toBe(false);
      }),
      { numRuns: 60 },
    );
    await probe();
  });
});
