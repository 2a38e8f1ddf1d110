/**
 * The Check contract as a model, for the property tests: the credential is read from
 * header_map (raw_value as latin1, else value) when it has headers, else from headers;
 * names compared case-insensitively; values split on ","; `authorization` yields only
 * `Bearer <token>`, `x-api-key` its trimmed part; one distinct value is the credential,
 * several are ambiguous. The active key has scopes ['chat'] (no wildcard), so a route's
 * requirement holds only when every required scope is `chat` and any_scopes is empty or
 * names `chat`. Also: the invariants of every response, and the request generators.
 */
import fc from 'fast-check';
import { generateKey } from '../../src/keys/format';
import { ERROR_TABLE, type DenyCode } from '../../src/errors/codes';
import type { WireCheckResponse, WireHeaderOption } from './envoy-client';

const CREDENTIAL_HEADERS = ['authorization', 'x-api-key'];

// ---- the contract model ------------------------------------------------------

export function bearerToken(part: string): string | undefined {
  const m = /^bearer[ \t](.*)$/is.exec(part.trim());
  const token = m ? m[1]!.trim() : '';
  return token === '' ? undefined : token;
}

/** The credential values the contract finds in the headers as the server sees them. */
export function credentialValues(headers: [string, string][]): string[] {
  const out: string[] = [];
  for (const [rawName, rawValue] of headers) {
    const name = rawName.replace(/[A-Z]/g, (c) => c.toLowerCase());
    if (!CREDENTIAL_HEADERS.includes(name)) continue;
    for (const part of rawValue.split(',')) {
      const v = name === 'authorization' ? bearerToken(part) : part.trim() || undefined;
      if (v !== undefined) out.push(v);
    }
  }
  return out;
}

export function scopeList(text: string | undefined): string[] {
  return [
    ...new Set(
      (text ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    ),
  ];
}

export function own(o: object | undefined, k: string): string | undefined {
  return o && Object.prototype.hasOwnProperty.call(o, k) ? (o as Record<string, string>)[k] : undefined;
}

/** Whether the route requirement of `ext` holds for a key whose only scope is `chat`. */
export function chatSatisfies(ext: Record<string, string> | undefined): boolean {
  const all = scopeList(own(ext, 'required_scopes'));
  const any = scopeList(own(ext, 'any_scopes'));
  return all.every((s) => s === 'chat') && (any.length === 0 || any.includes('chat'));
}

export interface Keys {
  active: string;
  activeId: string;
  orgId: string;
  revoked: string;
  unknown: string;
}

export type Outcome = { allow: true } | { allow: false; code: DenyCode };

export function expectedOutcome(headers: [string, string][], ext: Record<string, string> | undefined, k: Keys): Outcome {
  const distinct = [...new Set(credentialValues(headers))];
  if (distinct.length === 0) return { allow: false, code: 'missing_api_key' };
  if (distinct.length > 1) return { allow: false, code: 'ambiguous_credentials' };
  const key = distinct[0]!;
  if (key === k.revoked) return { allow: false, code: 'revoked_api_key' };
  if (key !== k.active) return { allow: false, code: 'invalid_api_key' };
  return chatSatisfies(ext) ? { allow: true } : { allow: false, code: 'insufficient_scope' };
}

/** A wire (snake_case) CheckRequest's headers as the server reads them. */
export function serverHeaders(req: WireRequest): [string, string][] {
  const http = req.attributes?.request?.http;
  if (!http) return [];
  const raw = http.header_map?.headers;
  if (raw && raw.length > 0) {
    return raw.map((h) => [
      (h.key ?? '').replace(/[A-Z]/g, (c) => c.toLowerCase()),
      h.raw_value && h.raw_value.length > 0 ? h.raw_value.toString('latin1') : (h.value ?? ''),
    ]);
  }
  return Object.entries(http.headers ?? {}).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => c.toLowerCase()), v]);
}

// ---- response checks ---------------------------------------------------------

/** `append` is set, and false: a BoolValue wrapper that is present with value false. */
export function appendExplicitlyFalse(o: WireHeaderOption): boolean {
  return o.append !== undefined && o.append !== null && (o.append.value ?? false) === false;
}

/** The invariants of every Check response, and the outcome it carries. */
export function outcomeOf(r: WireCheckResponse): Outcome {
  expect(r.status).toEqual(expect.any(Object));
  expect(
    Number(r.denied_response !== undefined && r.denied_response !== null) + Number(r.ok_response !== undefined && r.ok_response !== null),
  ).toBe(1);
  if (r.ok_response) {
    expect(r.http_response).toBe('ok_response');
    expect(r.status!.code ?? 0).toBe(0);
    for (const o of [...(r.ok_response.headers ?? []), ...(r.ok_response.response_headers_to_add ?? [])])
      expect(appendExplicitlyFalse(o)).toBe(true);
    return { allow: true };
  }
  const d = r.denied_response!;
  expect(r.http_response).toBe('denied_response');
  expect([401, 403, 503]).toContain(d.status?.code);
  expect(r.status!.code).toEqual(expect.any(Number));
  expect(r.status!.code).not.toBe(0);
  const headers = d.headers ?? [];
  for (const o of headers) expect(appendExplicitlyFalse(o)).toBe(true);
  const codeHeaders = headers.filter((o) => o.header.key === 'x-keyward-error-code');
  expect(codeHeaders).toHaveLength(1);
  const body = JSON.parse(d.body ?? '') as { error?: { code?: string } };
  expect(body.error?.code).toBe(codeHeaders[0]!.header.value);
  const code = body.error!.code as DenyCode;
  expect(ERROR_TABLE[code].http).toBe(d.status!.code);
  expect(ERROR_TABLE[code].grpc).toBe(r.status!.code);
  return { allow: false, code };
}

export function identityHeader(r: WireCheckResponse, name: string): string | undefined {
  return r.ok_response?.headers?.find((o) => o.header.key === name)?.header.value;
}

// ---- generators (built once the keys exist) ------------------------------------

export interface WireHeaderValue {
  key?: string;
  value?: string;
  raw_value?: Buffer;
}
export interface WireRequest {
  attributes?: {
    request?: {
      http?: { headers?: Record<string, string>; header_map?: { headers?: WireHeaderValue[] }; [k: string]: unknown };
      [k: string]: unknown;
    };
    context_extensions?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export function randomCase(s: string): fc.Arbitrary<string> {
  return fc
    .array(fc.boolean(), { minLength: s.length, maxLength: s.length })
    .map((up) => [...s].map((c, i) => (up[i] ? c.toUpperCase() : c)).join(''));
}

export const padding = fc.constantFrom('', ' ', '  ', '\t', '\u00a0', '\n ');
export const spTab = fc.constantFrom('', ' ', '\t', ' \t');

export function generators(k: Keys) {
  /** Tokens: the three keys, fresh valid-but-unknown keys, near misses, garbage. */
  const token = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(k.active, k.revoked, k.unknown) },
    { weight: 1, arbitrary: fc.constant(null).map(() => generateKey('test')) },
    {
      weight: 1,
      arbitrary: fc.nat(k.active.length - 1).map((i) => k.active.slice(0, i) + (k.active[i] === 'A' ? 'B' : 'A') + k.active.slice(i + 1)),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        k.active.toLowerCase(),
        k.active.slice(0, -1),
        `${k.active}x`,
        `${k.active} ${k.active}`,
        `${k.active},${k.unknown}`,
        `"${k.active}"`,
      ),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
    { weight: 1, arbitrary: fc.constantFrom('', ' ', ',', 'Bearer', 'null', 'undefined', '\u00ff\u00fe') },
  );
  const scheme = fc.oneof(
    randomCase('bearer').chain((b) => fc.constantFrom(`${b} `, `${b}\t`, `${b}  `)),
    fc.constantFrom('Basic ', 'Token ', 'Bearer', 'Bearer\u00a0', ''),
  );
  const part = fc.tuple(padding, fc.option(scheme, { nil: '' }), token, padding).map((p) => p.join(''));
  const anyValue = fc.array(part, { minLength: 1, maxLength: 3 }).map((ps) => ps.join(','));
  const credName = fc.oneof(randomCase('authorization'), randomCase('x-api-key'));
  const otherName = fc.oneof(
    fc.constantFrom('x-request-id', 'x-keyward-key-id', 'x-keyward-scopes', 'proxy-authorization', 'cookie', 'x-api-key2', 'content-type'),
    fc.string({ minLength: 1, maxLength: 15 }),
  );
  /** The key alone where the contract reads it. */
  const placed = (key: string) =>
    fc.oneof(
      fc
        .tuple(randomCase('authorization'), padding, randomCase('bearer'), fc.constantFrom(' ', '\t', '  '), spTab)
        .map(([n, p1, b, s, p2]) => [n, `${p1}${b}${s}${key}${p2}`] as [string, string]),
      fc.tuple(randomCase('x-api-key'), padding, padding).map(([n, p1, p2]) => [n, `${p1}${key}${p2}`] as [string, string]),
    );
  const randomHeader = fc.oneof(
    fc.tuple(credName, anyValue),
    fc.tuple(otherName, anyValue),
    fc.tuple(otherName, fc.string({ maxLength: 30 })),
  );
  /** Header lists: only the active key; the active key and another credential; anything. */
  const headerList = fc.oneof(
    fc
      .tuple(
        fc.array(fc.tuple(otherName, fc.string({ maxLength: 30 })), { maxLength: 4 }),
        fc.array(placed(k.active), { minLength: 1, maxLength: 3 }),
      )
      .map(([a, b]) => [...b, ...a]),
    fc
      .tuple(
        fc.array(randomHeader, { maxLength: 4 }),
        placed(k.active),
        fc.oneof(placed(k.revoked), placed(k.unknown), fc.tuple(credName, anyValue)),
      )
      .map(([a, b, c]) => [c, ...a, b]),
    fc
      .tuple(
        fc.array(randomHeader, { maxLength: 6 }),
        fc.option(fc.oneof(placed(k.revoked), placed(k.unknown), placed(k.active)), { nil: undefined }),
      )
      .map(([a, b]) => (b ? [...a, b] : a)),
    fc.array(
      fc.oneof(fc.tuple(otherName, anyValue), fc.tuple(credName, fc.constantFrom('', ' ', ',', ' , ', 'Basic abc', 'Bearer', 'Bearer '))),
      { maxLength: 4 },
    ),
  );
  const scopeText = fc.oneof(
    fc.constantFrom('', 'chat', ' chat , chat,', ',,', 'admin', 'chat,admin', 'Chat', '*', 'chat:*', 'chat:read', ' ', 'admin, chat'),
    fc.string({ maxLength: 12 }),
  );
  /** Mostly satisfiable by ['chat'] (absent, empty, chat), sometimes not. */
  const scopeOrAbsent = fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.constantFrom('', 'chat', ' chat , chat,', ',,', ' ') },
    { weight: 1, arbitrary: scopeText },
  );
  const contextExtensions = fc
    .record({
      required_scopes: scopeOrAbsent,
      any_scopes: scopeOrAbsent,
      other: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
    })
    .map((ext) => Object.fromEntries(Object.entries(ext).filter(([, v]) => v !== undefined)) as Record<string, string>)
    .chain((ext) =>
      fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 2 }).map((extra) => ({ ...extra, ...ext })),
    );
  return { token, part, anyValue, credName, otherName, placed, headerList, contextExtensions };
}

export type HeaderForm = 'headers' | 'raw_value' | 'value' | 'both';

/** A CheckRequest as Envoy sends it, with `list` as headers (map) or header_map. */
export function envoyRequest(list: [string, string][], form: HeaderForm, ext: Record<string, string>): WireRequest {
  const http: Record<string, unknown> = {
    id: '1',
    method: 'GET',
    path: '/v1/things',
    host: 'api.example.com',
    scheme: 'https',
    protocol: 'HTTP/1.1',
  };
  if (form === 'headers') {
    http.headers = { ':method': 'GET', ':path': '/v1/things', ':authority': 'api.example.com', ...Object.fromEntries(list) };
  } else {
    http.header_map = {
      headers: list.map(([key, v]) => {
        if (form === 'value') return { key, value: v };
        if (form === 'raw_value') return { key, raw_value: Buffer.from(v, 'latin1') };
        // Both: Envoy never does this; raw_value wins when it is not empty.
        return { key, value: `${v}-value-ignored`, raw_value: Buffer.from(v, 'latin1') };
      }),
    };
  }
  return {
    attributes: {
      source: { address: { socket_address: { address: '10.0.0.1', port_value: 44321 } } },
      request: { time: { seconds: 1, nanos: 0 }, http },
      context_extensions: ext,
    },
  };
}
