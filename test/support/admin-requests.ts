/**
 * Requests for the KeyAdmin fuzz tests (test/fuzz.admin-rpcs.*.test.ts): every RPC of
 * the generated service definition, with its request's descriptor read from proto/, and
 * arbitraries writing each request field by field by hand (empty, boundary-length,
 * 1 MiB or invalid UTF-8 strings, 10-byte varints, broken messages: see fuzz.ts mutate).
 */
import fc from 'fast-check';
import { Metadata } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { join } from 'node:path';
import type { Harness } from './harness';
import { http2Unary, ld, tag, varint, WT, type RawClient, type RawResult } from './raw-grpc';
import { invalidUtf8, mutate, mutation } from './fuzz';
import { KeyAdminService } from '../../src/gen/keyward/admin/v1/key_admin';

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
const definition = loadSync('keyward/admin/v1/key_admin.proto', { includeDirs: [join(__dirname, '..', '..', 'proto')], keepCase: true });
export const described = definition[`${PKG}.KeyAdmin`] as unknown as Record<string, { path: string; requestType: { type: MessageDesc } }>;

export interface Rpc {
  name: string;
  path: string;
  request: MessageDesc;
  decodeResponse: (b: Buffer) => unknown;
}

/** Every RPC of the generated definition, with its request's descriptor. */
export const RPCS: Rpc[] = Object.values(KeyAdminService).map((m) => {
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
export function printable(body: Buffer): Buffer {
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
export interface Pool {
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
export function messageArb(desc: MessageDesc, pool: Pool, depth = 3, plausible = false): fc.Arbitrary<Buffer> {
  if (desc.field.length === 0) return fc.constant(Buffer.alloc(0));
  return fc.tuple(...desc.field.map((f) => fieldBytes(f, desc, pool, depth, plausible))).map((parts) => Buffer.concat(parts));
}

/** A request for a random RPC: well-typed (usually), or broken (sometimes). */
export function requestArb(pool: Pool): fc.Arbitrary<{ rpc: Rpc; body: Buffer }> {
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

export type Credential = { kind: 'grpc'; values: string[] } | { kind: 'http2'; value: string };

function metadataOf(c: Credential): Metadata {
  const md = new Metadata();
  if (c.kind === 'grpc') for (const v of c.values) md.add('authorization', v);
  return md;
}

export async function call(h: Harness, admin: RawClient, rpc: Rpc, body: Buffer, c: Credential): Promise<RawResult> {
  if (c.kind === 'http2') return http2Unary(h.app.adminPort, rpc.path, body, { authorization: c.value });
  return admin.unary(rpc.path, body, metadataOf(c));
}
