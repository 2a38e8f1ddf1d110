/**
 * Property-based tests of credential extraction (src/authz/credentials.ts) and of
 * reading a CheckRequest (src/authz/request.ts), over random header lists and
 * random CheckRequest-shaped objects.
 *
 * The model below is the documented contract of extractCredential, written out
 * independently: names compared case-insensitively; each value split on ",";
 * each part trimmed; `authorization` yields only `Bearer <token>` (scheme in any
 * case); any other configured header yields its trimmed, non-empty part; one
 * distinct value is `found`, several are `ambiguous`, none is `missing`.
 */
import fc from 'fast-check';
import { extractCredential, type CredentialResult, type HeaderList } from '../src/authz/credentials';
import { readAttributes, type RequestReaderOptions } from '../src/authz/request';
import { RouteTable } from '../src/authz/routes';
import { generateKey, parseKey } from '../src/keys/format';
import type { CheckRequest } from '../src/gen/envoy/service/auth/v3/external_auth';
import { attributesOf, headerList } from './support/check-attributes';

const NAMES = ['authorization', 'x-api-key'] as const;

// ---- the model -------------------------------------------------------------

/**
 * The credential of one comma-separated part of an authorization value, or
 * undefined: the part trimmed, `Bearer` (any case), a space or tab, then the rest,
 * trimmed (a malformed bearer value is still a credential).
 */
function bearerToken(part: string): string | undefined {
  const t = part.trim();
  if (t.length < 7 || t.slice(0, 6).toLowerCase() !== 'bearer') return undefined;
  if (t[6] !== ' ' && t[6] !== '\t') return undefined;
  const token = t.slice(7).trim();
  return token === '' ? undefined : token;
}

/** HTTP header names are ASCII; only A-Z is lower-cased. */
const asciiLower = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** Every credential value the contract finds, with the (lower-case) header it came from. */
function credentialValues(headers: HeaderList, names: readonly string[]): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  for (const [rawName, rawValue] of headers) {
    const name = asciiLower(rawName);
    if (!names.includes(name)) continue;
    for (const part of rawValue.split(',')) {
      const v = name === 'authorization' ? bearerToken(part) : part.trim() || undefined;
      if (v !== undefined) out.push({ name, value: v });
    }
  }
  return out;
}

function model(headers: HeaderList, names: readonly string[]): CredentialResult {
  const vals = credentialValues(headers, names);
  const distinct = [...new Set(vals.map((v) => v.value))];
  const from = [...new Set(vals.map((v) => v.name))];
  if (distinct.length === 0) return { kind: 'missing' };
  if (distinct.length > 1) return { kind: 'ambiguous', headers: from };
  return { kind: 'found', key: distinct[0]!, headers: from };
}

// ---- generators ------------------------------------------------------------

/** Two fixed valid keys, so that generated requests repeat and mix them. */
const K1 = generateKey('live');
const K2 = generateKey('test');

/** A string in random letter case. */
function randomCase(s: string): fc.Arbitrary<string> {
  return fc
    .array(fc.boolean(), { minLength: s.length, maxLength: s.length })
    .map((up) => [...s].map((c, i) => (up[i] ? c.toUpperCase() : c)).join(''));
}

const credentialName = fc.oneof(randomCase('authorization'), randomCase('x-api-key'));
const headerName = fc.oneof(
  { weight: 4, arbitrary: credentialName },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'proxy-authorization',
      'x-api-key ',
      ' authorization',
      'x_api_key',
      'x-api-keys',
      'authorization:',
      'x-keyward-key-id',
      'x-request-id',
      'cookie',
      '',
      'x-api-\u212aey' /* Kelvin sign */,
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
);

const bearerPrefix = fc.oneof(
  randomCase('bearer').chain((b) => fc.constantFrom(`${b} `, `${b}\t`, `${b}  `, `${b} \t `)),
  fc.constantFrom('Bearer', 'Bearer\u00a0', 'Bearer\n', 'Basic ', 'Token ', 'Bearerx ', 'Bear er ', ''),
);
const token = fc.oneof(
  fc.constantFrom(K1, K2, K1.toLowerCase(), `${K1} ${K2}`, `${K1}\t${K2}`),
  fc.constant(null).map(() => generateKey('live')),
  fc.string({ unit: fc.constantFrom(...'0123456789ABCDEFabcdef_kwlivetst'), minLength: 1, maxLength: 60 }),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom('', ' ', '\t', ',', ' , ', '\u00a0', '\u2028', '\ufeff', 'é', '\u0000'),
);
const padding = fc.constantFrom('', ' ', '  ', '\t', ' \t', '\u00a0', '\n');
/** One comma-separated part: [padding][Bearer prefix?][token][padding]. */
const part = fc.tuple(padding, fc.option(bearerPrefix, { nil: '' }), token, padding).map((p) => p.join(''));
const headerValue = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .array(part, { minLength: 1, maxLength: 4 })
      .chain((ps) => fc.constantFrom(',', ', ', ' ,', ',\t').map((sep) => ps.join(sep))),
  },
  { weight: 1, arbitrary: fc.constant('') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 50 }) },
  // Very long values.
  {
    weight: 1,
    arbitrary: fc.tuple(fc.nat(20_000), fc.constantFrom('a', ' ', ',', 'Bearer ', K1)).map(([n, s]) => s.repeat(Math.ceil(n / s.length))),
  },
);
const header = fc.tuple(headerName, headerValue);
const headers: fc.Arbitrary<Array<[string, string]>> = fc.array(header, { maxLength: 8 });
const nameSets = fc.constantFrom<readonly string[]>(NAMES, ['x-api-key'], ['authorization'], ['x-api-key', 'x-other-key', 'authorization']);

/** Space/tab padding only (what the authorization grammar allows around the token). */
const spTab = fc.constantFrom('', ' ', '\t', ' \t ');
/** `k` alone in a credential header, as the contract reads it. */
const placedKeyAlone = (k: string): fc.Arbitrary<[string, string]> =>
  fc.oneof(
    fc
      .tuple(randomCase('authorization'), padding, randomCase('bearer'), fc.constantFrom(' ', '\t', '  ', ' \t'), spTab)
      .map(([n, p1, b, sep, p2]) => [n, `${p1}${b}${sep}${k}${p2}`] as [string, string]),
    fc.tuple(randomCase('x-api-key'), padding, padding).map(([n, p1, p2]) => [n, `${p1}${k}${p2}`] as [string, string]),
  );
/** `k` in a credential header, with a random other part before or after it in the same value. */
const placedKey = (k: string): fc.Arbitrary<[string, string]> =>
  fc.tuple(placedKeyAlone(k), fc.option(part, { nil: undefined }), fc.boolean()).map(([[n, v], other, before]) => {
    if (other === undefined) return [n, v];
    return [n, before ? `${other},${v}` : `${v},${other}`];
  });

/** Inserts `extra` at random positions of `list`. */
function insertAll<T>(list: T[], extra: T[], positions: number[]): T[] {
  const out = list.slice();
  extra.forEach((e, i) => out.splice(positions[i]! % (out.length + 1), 0, e));
  return out;
}

// ---- extractCredential -------------------------------------------------------

describe('extractCredential (property-based)', () => {
  it('never throws and returns missing, ambiguous or found', () => {
    fc.assert(
      fc.property(headers, nameSets, (hs, names) => {
        let r: CredentialResult | undefined;
        expect(() => (r = extractCredential(hs, names))).not.toThrow();
        expect(['missing', 'ambiguous', 'found']).toContain(r!.kind);
      }),
      { numRuns: 1000 },
    );
  });

  it('finds a key only as a comma-free, trimmed value actually present in a credential header', () => {
    fc.assert(
      fc.property(headers, nameSets, (hs, names) => {
        const r = extractCredential(hs, names);
        if (r.kind !== 'found') return;
        expect(r.key).not.toContain(',');
        expect(r.key).toBe(r.key.trim());
        expect(r.key).not.toBe('');
        const present = credentialValues(hs, names);
        expect(present.map((p) => p.value)).toContain(r.key);
        // Every credential value present is this key (else it would be ambiguous).
        expect(new Set(present.map((p) => p.value))).toEqual(new Set([r.key]));
        for (const h of r.headers) expect(names).toContain(h);
      }),
      { numRuns: 1000 },
    );
  });

  it('agrees with the contract model (kind, key and carrying headers)', () => {
    fc.assert(
      fc.property(headers, nameSets, (hs, names) => {
        expect(extractCredential(hs, names)).toEqual(model(hs, names));
      }),
      { numRuns: 1000 },
    );
  });

  it('is ambiguous, never found, when two different valid keys are in credential headers', () => {
    fc.assert(
      fc.property(headers, placedKey(K1), placedKey(K2), fc.array(fc.nat(), { minLength: 2, maxLength: 2 }), (hs, a, b, pos) => {
        const list = insertAll(hs, [a, b], pos);
        const r = extractCredential(list, NAMES);
        expect(r.kind).toBe('ambiguous');
        if (r.kind === 'ambiguous') {
          expect(r.headers).toEqual(expect.arrayContaining([a[0].toLowerCase(), b[0].toLowerCase()]));
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('finds one key given in several credential headers (and several times in one), with only non-credential headers around it', () => {
    const nonCredential = header.filter(([n]) => !(NAMES as readonly string[]).includes(n.toLowerCase()));
    const repeated = fc
      .array(placedKeyAlone(K1), { minLength: 1, maxLength: 3 })
      .map((ps) => ps.map(([n, v], i) => [n, i === 0 ? v : `${v},${v}`] as [string, string]));
    fc.assert(
      fc.property(
        fc.array(nonCredential, { maxLength: 6 }),
        repeated,
        fc.array(fc.nat(), { minLength: 3, maxLength: 3 }),
        (noise, placed, pos) => {
          const r = extractCredential(insertAll(noise, placed, pos), NAMES);
          expect(r.kind).toBe('found');
          if (r.kind === 'found') {
            expect(r.key).toBe(K1);
            expect(new Set(r.headers)).toEqual(new Set(placed.map(([n]) => n.toLowerCase())));
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

// ---- readCheckRequest over CheckRequest-shaped objects ------------------------

const routes = RouteTable.empty();
const READER = { credentialHeaders: NAMES, routes };
/** A decoded CheckRequest read as the Check reads its attributes. */
const readCheckRequest = (req: CheckRequest, opts: RequestReaderOptions) => readAttributes(attributesOf(req), opts);

const bytes = fc.oneof(
  fc.constant(Buffer.alloc(0)),
  fc.string({ maxLength: 80 }).map((s) => Buffer.from(s, 'latin1')),
  fc.uint8Array({ maxLength: 80 }).map((u) => Buffer.from(u)), // invalid UTF-8, mostly
  fc.tuple(headerValue, fc.boolean()).map(([v, utf8]) => Buffer.from(v, utf8 ? 'utf8' : 'latin1')),
);
const headerValueEntry = fc.record({ key: headerName, value: fc.oneof(headerValue, fc.constant('')), rawValue: bytes });
const scopeText = fc.oneof(
  fc.constantFrom('', 'chat', ' chat , ,chat', ',,,', '*', 'a:*', 'chat,admin', ' ', '\t,\u00a0'),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.nat(50_000).map((n) => 'x,'.repeat(n)),
);
const weirdKey = fc.constantFrom(
  'required_scopes',
  'any_scopes',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'Required_Scopes',
  '',
);
const contextExtensions = fc.oneof(
  fc.dictionary(fc.oneof(weirdKey, fc.string({ maxLength: 10 })), scopeText, { maxKeys: 6 }),
  fc.constant({}),
);
const headersMap = fc.dictionary(headerName, headerValue, { maxKeys: 8 });
const http = fc.record(
  {
    id: fc.string({ maxLength: 5 }),
    method: fc.constantFrom('', 'GET', 'post', 'DELETE', '\u00ff'),
    headers: headersMap,
    headerMap: fc.oneof(
      fc.constant({ headers: [] }),
      fc.constant({}),
      fc.record({ headers: fc.array(headerValueEntry, { maxLength: 8 }) }),
    ),
    path: fc.oneof(fc.constantFrom('', '/', '/v1/x?y=1'), fc.string({ maxLength: 30 })),
    host: fc.string({ maxLength: 20 }),
  },
  { requiredKeys: [] },
);
const checkRequest = fc.oneof(
  { weight: 1, arbitrary: fc.constant({}) }, // no attributes
  {
    weight: 12,
    arbitrary: fc.record({
      attributes: fc.record(
        {
          request: fc.oneof(
            { weight: 1, arbitrary: fc.constant(undefined) },
            { weight: 1, arbitrary: fc.constant({}) }, // no http
            { weight: 10, arbitrary: fc.record({ http }) },
          ),
          contextExtensions,
        },
        { requiredKeys: ['request'] }, // contextExtensions sometimes missing
      ),
    }),
  },
) as unknown as fc.Arbitrary<CheckRequest>;

/** The header source the contract names: header_map when it has headers, else headers. */
function expectedHeaders(req: CheckRequest): [string, string][] {
  const h = req.attributes?.request?.http;
  if (!h) return [];
  const raw = h.headerMap?.headers;
  if (raw && raw.length > 0) return raw.map((x) => [asciiLower(x.key), x.rawValue.length > 0 ? x.rawValue.toString('latin1') : x.value]);
  return Object.entries(h.headers ?? {}).map(([k, v]) => [asciiLower(k), v]);
}

function scopeModel(text: string | undefined): string[] {
  return [
    ...new Set(
      (text ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    ),
  ];
}

function own(o: object | undefined, k: string): string | undefined {
  return o && Object.prototype.hasOwnProperty.call(o, k) ? (o as Record<string, string>)[k] : undefined;
}

describe('readCheckRequest (property-based)', () => {
  it('never throws on CheckRequest-shaped objects (missing attributes/http, empty header_map, value and raw_value, weird context_extensions)', () => {
    fc.assert(
      fc.property(checkRequest, (req) => {
        expect(() => readCheckRequest(req, READER)).not.toThrow();
        expect(() => headerList(req)).not.toThrow();
      }),
      { numRuns: 1000 },
    );
  });

  it('reads headers from header_map (raw_value first, as latin1) when present, else headers; credential, scopes and spoofed headers follow', () => {
    fc.assert(
      fc.property(checkRequest, (req) => {
        const r = readCheckRequest(req, READER);
        const hs = expectedHeaders(req);
        expect(r.headers).toEqual(hs);
        const credential = model(hs, NAMES);
        expect(r.credential).toEqual(credential);
        // The key is parsed when the request is read: its text when well formed, else nothing to look up.
        expect(r.wellFormedKey).toBe(credential.kind === 'found' && parseKey(credential.key).ok ? credential.key : undefined);
        const ext = req.attributes?.contextExtensions;
        const fromEnvoy = { all: scopeModel(own(ext, 'required_scopes')), any: scopeModel(own(ext, 'any_scopes')) };
        expect(r.requirements).toEqual(fromEnvoy.all.length || fromEnvoy.any.length ? [fromEnvoy] : []);
        expect(r.public).toBe(false);
        expect(r.spoofed).toEqual([...new Set(hs.map(([k]) => k).filter((k) => k.startsWith('x-keyward-')))]);
        // The first x-request-id, kept only when it is a plain id (never something key-shaped).
        const rid = hs.find(([k]) => k === 'x-request-id')?.[1];
        const plain = rid !== undefined && /^[A-Za-z0-9._:-]{1,128}$/.test(rid) && !/kw_live_|kw_test_|kwadm_/.test(rid);
        expect(r.requestId).toBe(plain ? rid : undefined);
      }),
      { numRuns: 1000 },
    );
  });
});
