/**
 * Fuzzing every KeyAdmin RPC through the real admin gRPC server, on SQLite and
 * PostgreSQL. The RPCs are enumerated from the generated service definition
 * (src/gen/keyward/admin/v1/key_admin.ts), so a new RPC is fuzzed without a change
 * here; each request is generated field by field from its descriptor in proto/ (read
 * with @grpc/proto-loader) and written by hand, so strings can be empty, at the
 * column limits, 1 MiB long or invalid UTF-8, integers can be 10-byte varints, and
 * whole messages can be broken (see support/fuzz.ts mutate).
 *
 * Properties:
 *  - without a credential, or with a junk or wrong one (random text, other schemes,
 *    a near-miss of the token, unknown keys and tokens, a key without `admin`, a
 *    revoked admin key, two authorization entries, a credential with a tab), no call
 *    succeeds: each fails with missing_credentials or invalid_credentials, and nothing
 *    changes (organizations and keys are identical; the audit log gains only
 *    admin.auth_failed entries, which never hold the credential);
 *  - as root, every call either succeeds with a response that decodes, or fails with
 *    a code of src/errors/codes.ts under its gRPC status, never `internal` nor an
 *    authentication or permission code; invalid_argument names its field in ErrorInfo
 *    and BadRequest;
 *  - no error and no listing holds a secret of the test (support/harness secretsIn);
 *  - the servers keep serving, and no unhandled rejection or uncaught exception happens.
 */
import fc from 'fast-check';
import { Metadata } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { join } from 'node:path';
import { startHarness, secretsIn, TEST_ADMIN_TOKEN, type Harness } from './support/harness';
import { http2Unary, keywardError, ld, RawClient, tag, varint, watchProcessFailures, WT, type RawResult } from './support/raw-grpc';
import { invalidUtf8, mutate, mutation, stillServing } from './support/fuzz';
import { DIALECTS } from './support/databases';
import { KeyAdminService } from '../src/gen/keyward/admin/v1/key_admin';
import { ERROR_TABLE, isErrorCode } from '../src/errors/codes';
import { generateAdminToken, generateKey } from '../src/keys/format';

// ---------------------------------------------------------------- the RPCs and their request descriptors

interface FieldDesc {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}
interface MessageDesc {
  name: string;
  field: FieldDesc[];
  nestedType: MessageDesc[];
  options?: { mapEntry?: boolean } | null;
}

const PKG = 'keyward.admin.v1';
const definition = loadSync('keyward/admin/v1/key_admin.proto', { includeDirs: [join(__dirname, '..', 'proto')], keepCase: true });
const described = definition[`${PKG}.KeyAdmin`] as unknown as Record<string, { path: string; requestType: { type: MessageDesc } }>;

interface Rpc {
  name: string;
  path: string;
  request: MessageDesc;
  decodeResponse: (b: Buffer) => unknown;
}

/** Every RPC of the generated definition, with its request's descriptor. */
const RPCS: Rpc[] = Object.values(KeyAdminService).map((m) => {
  const name = m.path.split('/').pop()!;
  const d = described[name];
  if (!d || d.path !== m.path) throw new Error(`${m.path} is generated but not in proto/: regenerate src/gen`);
  return {
    name,
    path: m.path,
    request: d.requestType.type,
    decodeResponse: m.responseDeserialize,
    [fc.toStringMethod]: () => name,
  };
});

/** Request bytes, printed short in a counterexample. */
function printable(body: Buffer): Buffer {
  return Object.assign(body, {
    [fc.toStringMethod]: () => `<${body.length} bytes: ${body.subarray(0, 48).toString('hex')}${body.length > 48 ? '…' : ''}>`,
  });
}

function resolve(scope: MessageDesc, typeName: string): MessageDesc {
  const nested = scope.nestedType.find((n) => n.name === typeName);
  if (nested) return nested;
  const t = (definition[typeName] ?? definition[`${PKG}.${typeName}`]) as unknown as { type: MessageDesc } | undefined;
  if (!t) throw new Error(`unknown type ${typeName}`);
  return t.type;
}

// ---------------------------------------------------------------- request generation

/** Values that reach real rows and the documented limits. */
interface Pool {
  ids: string[];
  secrets: string[];
}

const BOUNDARY_LENGTHS = [0, 1, 15, 16, 63, 64, 65, 127, 128, 129, 199, 200, 201, 255, 256, 257, 499, 500, 501, 512, 513, 1000, 4096];
const BOUNDARY_INTS = [
  0n,
  1n,
  2n,
  27n,
  28n,
  29n,
  31n,
  59n,
  60n,
  61n,
  100n,
  1000n,
  1001n,
  3650n,
  3651n,
  86_400n,
  2_592_000n,
  2_592_001n,
  2n ** 31n - 1n,
  2n ** 31n,
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 63n - 1n,
  2n ** 64n - 1n,
];

/** Plausible values pass validation more often and reach the store. */
function plausibleString(pool: Pool): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...pool.ids) },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        'chat',
        'agents:read',
        'agents:*',
        'admin',
        'name',
        'Acme',
        'team',
        '2026-01',
        '/v1/chat',
        'POST',
        'key.create',
        '',
      ),
    },
    { weight: 1, arbitrary: fc.stringMatching(/^[a-z]{1,12}$/) },
  );
}

function stringArb(pool: Pool, plausible: boolean): fc.Arbitrary<string | Buffer> {
  if (plausible) return plausibleString(pool);
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...pool.ids) },
    {
      weight: 2,
      arbitrary: fc.tuple(fc.constantFrom('org_', 'key_', 'kw_live_', ''), fc.string({ maxLength: 30 })).map(([p, s]) => p + s),
    },
    {
      weight: 3,
      arbitrary: fc
        .tuple(fc.constantFrom(...BOUNDARY_LENGTHS), fc.constantFrom('a', 'é', '😀', ' ', ':', '*', '\u0000'))
        .map(([n, c]) => c.repeat(n)),
    },
    { weight: 3, arbitrary: fc.string({ maxLength: 30 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
    { weight: 2, arbitrary: invalidUtf8 },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        '2026-01',
        '2026-13',
        '0000-00',
        '9999-12',
        '2026-1',
        'chat',
        'agents:*',
        'admin',
        '*',
        'a b',
        'GET',
        'POST',
        'live',
        'test',
        '/v1/x',
        '?',
        'organization.create',
        'key.revoke',
      ),
    },
    { weight: 1, arbitrary: fc.constantFrom(...pool.secrets) },
    { weight: 1, arbitrary: fc.constant('m'.repeat(1024 * 1024)) },
  );
}

const plausibleVarint: fc.Arbitrary<bigint> = fc.oneof(
  fc.bigInt({ min: 0n, max: 5n }),
  fc.constantFrom(10n, 60n, 100n, 3600n, 1_767_225_600n),
);
const varintArb: fc.Arbitrary<bigint> = fc.oneof(
  { weight: 3, arbitrary: fc.bigInt({ min: 0n, max: 100n }) },
  { weight: 3, arbitrary: fc.constantFrom(...BOUNDARY_INTS) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
  { weight: 1, arbitrary: fc.bigInt({ min: -(2n ** 63n), max: -1n }) },
);

function fieldBytes(f: FieldDesc, scope: MessageDesc, pool: Pool, depth: number, plausible: boolean): fc.Arbitrary<Buffer> {
  const one = (): fc.Arbitrary<Buffer> => {
    switch (f.type) {
      case 'TYPE_STRING':
      case 'TYPE_BYTES':
        return stringArb(pool, plausible).map((s) => ld(f.number, s));
      case 'TYPE_BOOL':
        return (plausible ? fc.constantFrom(0n, 1n) : fc.constantFrom(0n, 1n, 2n, 2n ** 64n - 1n)).map((v) =>
          Buffer.concat([tag(f.number, WT.VARINT), varint(v)]),
        );
      case 'TYPE_DOUBLE':
        return (
          plausible
            ? fc.double({ min: 0, max: 1000, noNaN: true })
            : fc.oneof(fc.double(), fc.constantFrom(NaN, Infinity, -Infinity, -0, 1e308, 5e-324))
        ).map((d) => {
          const b = Buffer.alloc(8);
          b.writeDoubleLE(d);
          return Buffer.concat([tag(f.number, WT.I64), b]);
        });
      case 'TYPE_FLOAT':
      case 'TYPE_FIXED32':
      case 'TYPE_SFIXED32':
        return fc.uint8Array({ minLength: 4, maxLength: 4 }).map((u) => Buffer.concat([tag(f.number, WT.I32), Buffer.from(u)]));
      case 'TYPE_FIXED64':
      case 'TYPE_SFIXED64':
        return fc.uint8Array({ minLength: 8, maxLength: 8 }).map((u) => Buffer.concat([tag(f.number, WT.I64), Buffer.from(u)]));
      case 'TYPE_MESSAGE': {
        if (depth <= 0) return fc.constant(ld(f.number, Buffer.alloc(0)));
        const inner = resolve(scope, f.typeName);
        return messageArb(inner, pool, depth - 1, plausible).map((b) => ld(f.number, b));
      }
      default: // every integer type and enums
        return (plausible ? plausibleVarint : varintArb).map((v) => Buffer.concat([tag(f.number, WT.VARINT), varint(v)]));
    }
  };
  if (f.label === 'LABEL_REPEATED') {
    const count = plausible
      ? fc.integer({ min: 0, max: 2 })
      : fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 3 }) }, { weight: 1, arbitrary: fc.integer({ min: 15, max: 70 }) });
    return count.chain((n) => fc.array(one(), { minLength: n, maxLength: n })).map((parts) => Buffer.concat(parts));
  }
  return fc.option(one(), { nil: undefined, freq: 3 }).map((b) => b ?? Buffer.alloc(0));
}

/** A message of this descriptor, each field present or not, in field order. */
function messageArb(desc: MessageDesc, pool: Pool, depth = 3, plausible = false): fc.Arbitrary<Buffer> {
  if (desc.field.length === 0) return fc.constant(Buffer.alloc(0));
  return fc.tuple(...desc.field.map((f) => fieldBytes(f, desc, pool, depth, plausible))).map((parts) => Buffer.concat(parts));
}

/** A request for a random RPC: well-typed (usually), or broken (sometimes). */
function requestArb(pool: Pool): fc.Arbitrary<{ rpc: Rpc; body: Buffer }> {
  return fc.constantFrom(...RPCS).chain((rpc) =>
    fc
      .oneof(
        { weight: 3, arbitrary: messageArb(rpc.request, pool, 3, true) },
        { weight: 4, arbitrary: messageArb(rpc.request, pool) },
        {
          weight: 2,
          arbitrary: fc
            .tuple(messageArb(rpc.request, pool), fc.array(mutation, { minLength: 1, maxLength: 3 }))
            .map(([b, ms]) => ms.reduce(mutate, b)),
        },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)) },
      )
      .map((body) => ({ rpc, body: printable(body) })),
  );
}

// ---------------------------------------------------------------- credentials

type Credential = { kind: 'grpc'; values: string[] } | { kind: 'http2'; value: string };

function metadataOf(c: Credential): Metadata {
  const md = new Metadata();
  if (c.kind === 'grpc') for (const v of c.values) md.add('authorization', v);
  return md;
}

async function call(h: Harness, admin: RawClient, rpc: Rpc, body: Buffer, c: Credential): Promise<RawResult> {
  if (c.kind === 'http2') return http2Unary(h.app.adminPort, rpc.path, body, { authorization: c.value });
  return admin.unary(rpc.path, body, metadataOf(c));
}

// ---------------------------------------------------------------- the tests

describe.each(DIALECTS)('KeyAdmin fuzzing: every RPC, without, with a wrong and with the root credential (%s)', (dialect) => {
  let h: Harness;
  let admin: RawClient;
  let authz: RawClient;
  let watch: ReturnType<typeof watchProcessFailures>;
  let probeKey: string;
  let pool: Pool;
  let junkCredential: fc.Arbitrary<Credential>;
  /** Every credential string sent by the junk property (to look for in the audit log). */
  const junkSent = new Set<string>();

  beforeAll(async () => {
    watch = watchProcessFailures();
    h = await startHarness(dialect);
    admin = new RawClient(h.app.adminPort);
    authz = new RawClient(h.app.authzPort);
    // The liveness probe's key lives in an organization the fuzzer never learns of.
    const probeOrg = await h.root.createOrganization({ name: 'Probe', rateLimitPerMinute: 0 });
    probeKey = (await h.root.createKey({ organizationId: probeOrg.id, name: 'probe', scopes: ['chat'] })).secret;

    const org = await h.root.createOrganization({ name: 'Fuzz' });
    const other = await h.root.createOrganization({ name: 'Other' });
    const mk = (o: string, name: string, scopes: string[]) =>
      h.root.createKey({ organizationId: o, name, scopes, metadata: { team: 'fuzz' } });
    const adminKey = await mk(org.id, 'admin', ['admin']);
    const chatKey = await mk(org.id, 'chat', ['chat', '*']);
    const revokedAdmin = await mk(org.id, 'revoked-admin', ['admin']);
    await h.root.revokeKey({ id: revokedAdmin.key!.id, reason: 'fuzz' });
    const otherKey = await mk(other.id, 'other', ['admin']);
    pool = {
      ids: [org.id, other.id, adminKey.key!.id, chatKey.key!.id, revokedAdmin.key!.id, otherKey.key!.id],
      secrets: [chatKey.secret, generateKey('test'), generateAdminToken()],
    };
    const near = (s: string) => s.slice(0, -1) + (s.endsWith('x') ? 'y' : 'x');
    junkCredential = fc.oneof(
      { weight: 2, arbitrary: fc.stringMatching(/^[ -~]{0,80}$/).map((v): Credential => ({ kind: 'grpc', values: [v] })) },
      { weight: 2, arbitrary: fc.stringMatching(/^[!-~]{1,60}$/).map((v): Credential => ({ kind: 'grpc', values: [`Bearer ${v}`] })) },
      {
        weight: 4,
        arbitrary: fc
          .constantFrom(
            `Basic ${TEST_ADMIN_TOKEN}`,
            `Bearer ${near(TEST_ADMIN_TOKEN)}`,
            `Bearer ${TEST_ADMIN_TOKEN}x`,
            `Bearer ${TEST_ADMIN_TOKEN.slice(1)}`,
            `Bearer ${TEST_ADMIN_TOKEN} extra`,
            `Bearer${TEST_ADMIN_TOKEN}`,
            `Bearer ${generateKey('live')}`,
            `Bearer ${generateAdminToken()}`,
            `Bearer ${chatKey.secret}`,
            `Bearer ${revokedAdmin.secret}`,
            `Bearer ${near(adminKey.secret)}`,
            `Bearer ${'t'.repeat(10_000)}`,
            'Bearer',
            'Bearer ',
            '',
          )
          .map((v): Credential => ({ kind: 'grpc', values: [v] })),
      },
      // Two credentials joined as a proxy joins repeated headers (Node's HTTP/2 client sends authorization once only).
      {
        weight: 1,
        arbitrary: fc
          .constantFrom(`Bearer ${TEST_ADMIN_TOKEN}, Bearer ${TEST_ADMIN_TOKEN}`, `Bearer ${TEST_ADMIN_TOKEN},`)
          .map((v): Credential => ({ kind: 'grpc', values: [v] })),
      },
      {
        weight: 1,
        arbitrary: fc
          .constantFrom(`Bearer\t${TEST_ADMIN_TOKEN}\u00e9`, `Bearer ${TEST_ADMIN_TOKEN}\u00ff`, `Bearer ${adminKey.secret}\t\u0080`)
          .map((value): Credential => ({ kind: 'http2', value })),
      },
      { weight: 1, arbitrary: fc.constant<Credential>({ kind: 'grpc', values: [] }) },
    );
  });
  afterAll(async () => {
    admin?.close();
    authz?.close();
    watch?.stop();
    await h?.stop();
    expect(watch.failures).toEqual([]);
  });

  const probe = () => stillServing(h, authz, probeKey, watch.failures);

  /** Organizations and their keys, as root sees them. */
  async function state(): Promise<string> {
    await h.app.lastUsed.flush();
    const orgs = await h.root.listOrganizations({ pageSize: 1000 });
    const keys = await Promise.all(
      orgs.organizations.map((o) => h.root.listKeys({ organizationId: o.id, includeRevoked: true, pageSize: 1000 })),
    );
    return JSON.stringify({ orgs, keys });
  }

  /**
   * A failed call's keyward error: known code, the table's gRPC status, both copies
   * agreeing, no secret. A message above 4 MiB is refused by grpc-js itself, before
   * keyward sees it (RESOURCE_EXHAUSTED, no keyward code): `message_too_large`.
   */
  function expectDocumentedError(r: RawResult): string {
    expect(r.status).not.toBe(0);
    if (r.status === 8 && /^Received message larger than max \(\d+ vs 4194304\)$/.test(r.details)) return 'message_too_large';
    const e = keywardError(r);
    expect(isErrorCode(e.trailerCode)).toBe(true);
    expect(e.info).toMatchObject({ reason: e.trailerCode, domain: 'keyward' });
    const code = e.trailerCode as keyof typeof ERROR_TABLE;
    expect(r.status).toBe(ERROR_TABLE[code].grpc);
    if (code === 'invalid_argument') {
      expect(e.info!.metadata.field).toBeTruthy();
      expect(e.badRequest?.fieldViolations.map((v) => v.field)).toEqual([e.info!.metadata.field]);
    } else expect(e.badRequest).toBeUndefined();
    expect(secretsIn(`${r.details} ${JSON.stringify(e.info)} ${JSON.stringify(e.badRequest ?? {})}`, h.config)).toEqual([]);
    for (const s of pool.secrets) expect(r.details).not.toContain(s);
    return code;
  }

  it('covers every RPC of the generated definition', () => {
    expect(RPCS.map((r) => r.name)).toEqual(Object.keys(described));
    expect(RPCS.length).toBeGreaterThanOrEqual(17);
  });

  it('answers each RPC without a credential, with a wrong one and as root, for empty, broken and random requests', async () => {
    const before = await state();
    const bodies = (rpc: Rpc) => [
      Buffer.alloc(0),
      Buffer.from([0xff, 0xff, 0xff]),
      Buffer.concat([tag(1, WT.VARINT), Buffer.alloc(12, 0xff), Buffer.from([1])]),
      Buffer.concat([tag(1, WT.I64), Buffer.alloc(8, 7)]),
      fc.sample(messageArb(rpc.request, pool), { numRuns: 1, seed: rpc.path.length })[0]!,
    ];
    for (const rpc of RPCS) {
      for (const body of bodies(rpc)) {
        expect({ rpc: rpc.name, code: expectDocumentedError(await call(h, admin, rpc, body, { kind: 'grpc', values: [] })) }).toEqual({
          rpc: rpc.name,
          code: 'missing_credentials',
        });
        expect({
          rpc: rpc.name,
          code: expectDocumentedError(await call(h, admin, rpc, body, { kind: 'grpc', values: [`Bearer ${TEST_ADMIN_TOKEN}0`] })),
        }).toEqual({ rpc: rpc.name, code: 'invalid_credentials' });
      }
    }
    expect(await state()).toBe(before);
    for (const rpc of RPCS) {
      for (const body of bodies(rpc)) {
        const r = await call(h, admin, rpc, body, { kind: 'grpc', values: [`Bearer ${TEST_ADMIN_TOKEN}`] });
        if (r.status === 0) expect(() => rpc.decodeResponse(r.response!)).not.toThrow();
        else
          expect({ rpc: rpc.name, code: expectDocumentedError(r) }).not.toMatchObject({
            code: expect.stringMatching(
              /^(internal|missing_credentials|invalid_credentials|permission_denied|too_many_auth_failures)$/,
            ) as unknown,
          });
      }
    }
    await probe();
  });

  it('never answers a missing, junk or wrong credential with success, and changes nothing', async () => {
    const before = await state();
    const auditBefore = (await h.root.listAuditEvents({ pageSize: 1000 })).events.length;
    await fc.assert(
      fc.asyncProperty(requestArb(pool), junkCredential, async ({ rpc, body }, cred) => {
        if (cred.kind === 'grpc') cred.values.forEach((v) => junkSent.add(v.replace(/^\S+\s+/, '')));
        else junkSent.add(cred.value);
        const code = expectDocumentedError(await call(h, admin, rpc, body, cred));
        expect(['missing_credentials', 'invalid_credentials', 'message_too_large']).toContain(code);
      }),
      { numRuns: dialect === 'sqlite' ? 200 : 120 },
    );
    expect(await state()).toBe(before);
    const audit = (await h.root.listAuditEvents({ pageSize: 1000 })).events;
    const added = audit.slice(0, audit.length - auditBefore);
    expect(added.length).toBeGreaterThan(0);
    expect(new Set(added.map((e) => `${e.action}/${e.outcome}`))).toEqual(new Set(['admin.auth_failed/denied']));
    const text = JSON.stringify(audit);
    expect(secretsIn(text, h.config)).toEqual([]);
    for (const s of junkSent) if (s.length >= 16) expect(text).not.toContain(s);
    await probe();
  });

  it('answers root with a decodable response or a documented error, never internal, and leaks no secret', async () => {
    const codes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(requestArb(pool), async ({ rpc, body }) => {
        const r = await call(h, admin, rpc, body, { kind: 'grpc', values: [`Bearer ${TEST_ADMIN_TOKEN}`] });
        if (r.status !== 0) {
          const code = expectDocumentedError(r);
          codes.set(code, (codes.get(code) ?? 0) + 1);
          expect(['internal', 'missing_credentials', 'invalid_credentials', 'permission_denied', 'too_many_auth_failures']).not.toContain(
            code,
          );
          return;
        }
        codes.set('ok', (codes.get('ok') ?? 0) + 1);
        const res = rpc.decodeResponse(r.response!) as Record<string, unknown>;
        // The new key of CreateKey and RotateKey is the one secret a response carries, once.
        const { secret, ...rest } = res;
        if (rpc.name === 'CreateKey' || rpc.name === 'RotateKey') expect(String(secret)).toMatch(/^kw_(live|test)_/);
        let text = JSON.stringify(rest, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
        // What the fuzzer itself stored (names, metadata) may come back; nothing else.
        for (const s of pool.secrets) text = text.split(s).join('');
        // So may a hash-shaped run of hex digits the request itself sent (a name of 64 'a's).
        const sent = `${body.toString('utf8')}\u0000${body.toString('latin1')}`;
        text = text.replace(/[0-9a-f]{64,}/gi, (run) => (sent.includes(run) ? '' : run));
        expect(secretsIn(text, h.config)).toEqual([]);
      }),
      // Run first: one call that succeeds and one refused by validation are always among the inputs.
      {
        numRuns: dialect === 'sqlite' ? 300 : 150,
        examples: [
          [{ rpc: RPCS.find((r) => r.name === 'ListOrganizations')!, body: printable(Buffer.alloc(0)) }],
          [{ rpc: RPCS.find((r) => r.name === 'CreateOrganization')!, body: printable(Buffer.alloc(0)) }],
        ],
      },
    );
    // The run reached past validation and authentication.
    expect(codes.get('ok') ?? 0).toBeGreaterThan(0);
    expect(codes.get('invalid_argument') ?? 0).toBeGreaterThan(0);
    await probe();
  });
});
