/**
 * Fuzzing envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs, a client
 * stream on the authz port, through the real server on SQLite and PostgreSQL. Each
 * run opens a stream and writes one to six messages: random bytes, broken protobuf,
 * or StreamAccessLogsMessages written field by field with junk everywhere (invalid
 * UTF-8, oversized strings, enormous varints, wrong value kinds in keyward's metadata,
 * google.protobuf.Struct values nested 100 and 10,000 deep, times and durations out
 * of range, tokens and cost headers that are not numbers), mixed with entries that
 * carry the ids of a real key and so are recorded.
 *
 * Properties: every stream is answered OK when the client ends it; the servers keep
 * serving; no unhandled rejection or uncaught exception happens; what was recorded is
 * written (no failed flush, nothing left in the buffer), and no access-log event
 * counts a request: the organization's request count is exactly the Checks allowed.
 */
import fc from 'fast-check';
import { startHarness, type Harness } from './support/harness';
import { deepStruct, ld, ldAll, mapEntry, RawClient, tag, varint, vi, watchProcessFailures, WT } from './support/raw-grpc';
import { ACCESS_LOG, CHECK, checkOutcome, invalidUtf8, junkText, mutate, mutation, stillServing } from './support/fuzz';
import { checkRequest } from './support/raw-grpc';
import { DIALECTS } from './support/databases';

const NS = 'envoy.filters.http.ext_authz';
/** Stands for the fuzz key in generated request ids (the key exists only once the harness runs). */
const PLACEHOLDER = '\u0000fuzz-key\u0000';

/** A google.protobuf.Value. */
const value = {
  string: (s: string | Buffer) => ld(3, s),
  number: (n: number) => {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(n);
    return Buffer.concat([tag(2, WT.I64), b]);
  },
  bool: (v: bigint) => vi(4, v),
  null: () => vi(1, 0),
  struct: (body: Buffer) => ld(5, body),
  list: (values: Buffer[]) =>
    ld(
      6,
      ldAll(
        1,
        values.map((v) => ld(1, v)),
      ),
    ),
};

/** The body of a Struct with these (key, Value body) fields. */
const struct = (fields: [string | Buffer, Buffer][]) => Buffer.concat(fields.map(([k, v]) => mapEntry(1, k, v)));

describe.each(DIALECTS)('StreamAccessLogs fuzzing (%s)', (dialect) => {
  let h: Harness;
  let authz: RawClient;
  let watch: ReturnType<typeof watchProcessFailures>;
  let probeKey: string;
  let ids: { org: string; key: string };
  let fuzzKey: string;
  const checksAllowed = 3;

  beforeAll(async () => {
    watch = watchProcessFailures();
    h = await startHarness(dialect, { authz: { usageRawEvents: true } });
    authz = new RawClient(h.app.authzPort);
    const probeOrg = await h.root.createOrganization({ name: 'Probe', rateLimitPerMinute: 0 });
    probeKey = (await h.root.createKey({ organizationId: probeOrg.id, name: 'probe', scopes: ['chat'] })).secret;
    const org = await h.root.createOrganization({ name: 'Fuzz', rateLimitPerMinute: 0 });
    const k = await h.root.createKey({ organizationId: org.id, name: 'k', scopes: ['chat'] });
    ids = { org: org.id, key: k.key!.id };
    fuzzKey = k.secret;
    for (let i = 0; i < checksAllowed; i++) {
      expect(
        checkOutcome(await authz.unary(CHECK, checkRequest({ path: '/v1/chat', headers: [['x-api-key', fuzzKey]] })), {}, h.config).allow,
      ).toBe(true);
    }
  });
  afterAll(async () => {
    authz?.close();
    watch?.stop();
    await h?.stop();
    expect(watch.failures).toEqual([]);
  });

  /** The message generator; built once the organization and key exist. */
  function messages() {
    /** keyward's metadata Struct: the real ids (recorded), junk ids or values of the wrong kind, error_code, deep nesting. */
    const keywardStruct = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.constant(null).map(() =>
          struct([
            ['key_id', value.string(ids.key)],
            ['org_id', value.string(ids.org)],
            ['environment', value.string('live')],
          ]),
        ),
      },
      {
        weight: 1,
        arbitrary: fc.constant(null).map(() =>
          struct([
            ['key_id', value.string(ids.key)],
            ['org_id', value.string(ids.org)],
            ['error_code', value.string('revoked_api_key')],
          ]),
        ),
      },
      {
        weight: 3,
        arbitrary: fc
          .array(
            fc.tuple(
              fc.oneof(fc.constantFrom('key_id', 'org_id', 'error_code', '__proto__', 'constructor', ''), junkText(100)),
              fc.oneof(
                junkText(2000).map(value.string),
                fc.double().map(value.number),
                fc.constantFrom(0n, 1n, 2n ** 64n - 1n).map(value.bool),
                fc.constant(value.null()),
                fc.constantFrom(ids.key, ids.org, 'key_x', 'org_').map((s) => value.list([value.string(s)])),
                fc.constantFrom(ids.key, ids.org).map((s) => value.struct(struct([['v', value.string(s)]]))),
              ),
            ),
            { maxLength: 5 },
          )
          .map(struct),
      },
      {
        weight: 1,
        arbitrary: fc.constantFrom(100, 2000).chain((d) =>
          fc.boolean().map((l) =>
            struct([
              ['key_id', value.struct(deepStruct(d, l))],
              ['org_id', value.string(ids.org)],
            ]),
          ),
        ),
      },
    );

    const timestamp = fc
      .tuple(
        fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.constantFrom(0n, 1_767_225_600n, 253_402_300_800n)),
        fc.oneof(fc.integer({ min: -2e9, max: 2e9 }), fc.constant(0)),
      )
      .map(([s, n]) => Buffer.concat([vi(1, s), vi(2, BigInt(n))]));

    const headersMap = (names: string[]) =>
      fc
        .array(
          fc.tuple(
            fc.oneof(fc.constantFrom(...names), junkText(40)),
            fc.oneof(
              fc.constantFrom('1234', '0.0185', '-1', '1e400', 'NaN', '0x10', '9007199254740993', '1000000001', '999999999', ' 12 '),
              junkText(500),
            ),
          ),
          { maxLength: 4 },
        )
        .map((l) => Buffer.concat(l.map(([k, v]) => mapEntry(4, k, v))));

    /** An HTTPAccessLogEntry written field by field. */
    const httpEntry = fc
      .record({
        md: fc.option(
          fc.tuple(
            fc.oneof({ weight: 5, arbitrary: fc.constant<string | Buffer>(NS) }, { weight: 1, arbitrary: junkText(40) }),
            keywardStruct,
          ),
          { nil: undefined, freq: 6 },
        ),
        start: fc.option(timestamp, { nil: undefined }),
        duration: fc.option(timestamp, { nil: undefined }),
        lastByte: fc.option(timestamp, { nil: undefined }),
        cluster: junkText(200),
        method: fc.oneof(fc.integer({ min: 0, max: 10 }).map(BigInt), fc.constantFrom(2n ** 32n, 2n ** 64n - 1n)),
        path: junkText(5000),
        originalPath: junkText(100),
        requestId: fc.oneof(junkText(300), fc.constant(PLACEHOLDER)),
        requestHeaders: fc.array(fc.tuple(fc.oneof(fc.constant(':method'), junkText(20)), junkText(40)), { maxLength: 3 }),
        code: fc.option(fc.oneof(fc.integer({ min: 0, max: 999 }).map(BigInt), fc.constantFrom(2n ** 32n - 1n, 2n ** 64n - 1n)), {
          nil: undefined,
        }),
        responseHeaders: headersMap(['x-usage-tokens', 'x-usage-cost-usd', 'X-Usage-Tokens']),
        protocol: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      })
      .map((e) => {
        const common = Buffer.concat([
          e.start ? ld(5, e.start) : Buffer.alloc(0),
          e.lastByte ? ld(12, e.lastByte) : Buffer.alloc(0),
          ld(15, e.cluster),
          e.md ? ld(17, mapEntry(1, e.md[0], e.md[1])) : Buffer.alloc(0),
          e.duration ? ld(23, e.duration) : Buffer.alloc(0),
        ]);
        const request = Buffer.concat([
          vi(1, e.method),
          ld(5, e.path),
          ld(9, e.requestId === PLACEHOLDER ? fuzzKey : e.requestId),
          ld(10, e.originalPath),
          ...e.requestHeaders.map(([k, v]) => mapEntry(13, k, v)),
        ]);
        const response = Buffer.concat([
          e.code !== undefined ? ld(1, vi(1, e.code)) : Buffer.alloc(0),
          e.responseHeaders,
          ld(6, 'via_upstream'),
        ]);
        return Buffer.concat([ld(1, common), vi(2, e.protocol), ld(3, request), ld(4, response)]);
      });

    /** A StreamAccessLogsMessage: identifier, then HTTP or TCP entries. */
    const message = fc.oneof(
      {
        weight: 6,
        arbitrary: fc
          .tuple(
            fc.option(fc.tuple(junkText(100), junkText(100)), { nil: undefined }),
            fc.boolean(),
            fc.array(httpEntry, { minLength: 0, maxLength: 5 }),
          )
          .map(([ident, tcp, entries]) =>
            Buffer.concat([
              ident ? ld(1, ld(1, ld(1, ident[0])), ld(2, ident[1])) : Buffer.alloc(0),
              tcp ? ld(3, ...entries.map((x) => ld(1, x))) : ld(2, ...entries.map((x) => ld(1, x))),
            ]),
          ),
      },
      {
        weight: 2,
        arbitrary: fc
          .tuple(fc.array(httpEntry, { maxLength: 2 }), fc.array(mutation, { minLength: 1, maxLength: 3 }))
          .map(([es, ms]) => ms.reduce(mutate, ld(2, ...es.map((x) => ld(1, x))))),
      },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 500 }).map((u) => Buffer.from(u)) },
      { weight: 1, arbitrary: invalidUtf8.map((b) => ld(1, ld(2, b))) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          Buffer.concat([tag(2, WT.VARINT), varint(2n ** 64n - 1n)]),
          Buffer.concat([tag(2, WT.LEN), Buffer.alloc(11, 0xff)]),
          ld(2, ld(1, ld(1, ld(17, mapEntry(1, NS, deepStruct(10_000, true)))))),
        ),
      },
    );
    return message;
  }

  it('answers every stream of garbage OK, keeps serving, and never counts a request', async () => {
    const before = { ...h.app.accessLogStats };
    const recordable = Buffer.concat([
      ld(
        1,
        ld(
          17,
          mapEntry(
            1,
            NS,
            struct([
              ['key_id', value.string(ids.key)],
              ['org_id', value.string(ids.org)],
            ]),
          ),
        ),
      ),
      ld(3, ld(5, '/v1/fuzz')),
    ]);
    const ignored = ld(3, ld(5, '/public'));
    const flushErrorsBefore = h.app.usage.stats().flushErrors;
    await fc.assert(
      fc.asyncProperty(fc.array(messages(), { minLength: 1, maxLength: 6 }), async (list) => {
        const r = await authz.clientStream(ACCESS_LOG, list);
        expect({ status: r.status, details: r.details }).toEqual({ status: 0, details: '' });
      }),
      // Runs first, so that a recorded and an ignored entry are always among the inputs.
      { numRuns: dialect === 'sqlite' ? 150 : 80, examples: [[[ld(2, ld(1, recordable), ld(1, ignored))]]] },
    );
    const stats = h.app.accessLogStats;
    expect(stats.streams - before.streams).toBeGreaterThanOrEqual(dialect === 'sqlite' ? 150 : 80);
    expect(stats.undecodable).toBeGreaterThan(before.undecodable);
    expect(stats.entriesRecorded).toBeGreaterThan(before.entriesRecorded);
    expect(stats.entriesIgnored).toBeGreaterThan(before.entriesIgnored);
    await stillServing(h, authz, probeKey, watch.failures);

    await h.app.usage.flush();
    expect(h.app.usage.stats()).toMatchObject({ buffered: 0, flushErrors: flushErrorsBefore });
    const month = h.clock.now().toISOString().slice(0, 7);
    const usage = await h.root.getUsageStats({ organizationId: ids.org, month });
    expect(usage.totals?.requests).toBe(checksAllowed);
    const rows = (await h.app.orm.em
      .getConnection()
      .execute(`select count(*) as n, sum(requests) as r from usage_events where source = 'accesslog'`)) as {
      n: number | string;
      r: number | string | null;
    }[];
    expect(Number(rows[0]!.n)).toBeGreaterThan(0);
    expect(Number(rows[0]!.r)).toBe(0);
  });

  it('takes an entry with keyward metadata nested 10,000 deep, a 1 MiB path and 3 MiB of entries in one message', async () => {
    const before = h.app.accessLogStats.entriesSeen;
    const deep = ld(1, ld(17, mapEntry(1, NS, struct([['key_id', value.struct(deepStruct(10_000))]]))));
    const bigPath = Buffer.concat([
      ld(
        1,
        ld(
          17,
          mapEntry(
            1,
            NS,
            struct([
              ['key_id', value.string(ids.key)],
              ['org_id', value.string(ids.org)],
            ]),
          ),
        ),
      ),
      ld(3, ld(5, 'p'.repeat(1024 * 1024))),
    ]);
    const many = Array.from({ length: 3 }, () => bigPath);
    const r = await authz.clientStream(ACCESS_LOG, [ld(2, ld(1, deep)), ld(2, ...many.map((x) => ld(1, x)))]);
    expect(r.status).toBe(0);
    expect(h.app.accessLogStats.entriesSeen + h.app.accessLogStats.undecodable).toBeGreaterThan(before);
    // A message above 4 MiB ends the stream with RESOURCE_EXHAUSTED; the server goes on.
    const over = await authz.clientStream(ACCESS_LOG, [ld(2, ...Array.from({ length: 5 }, () => ld(1, bigPath)))]);
    expect(over.status).toBe(8);
    await stillServing(h, authz, probeKey, watch.failures);
  });
});
