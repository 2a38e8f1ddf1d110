/**
 * Reads what keyward needs from an ext_authz CheckRequest: the headers (from
 * `headers` or raw `header_map`), the credential, the route's scope requirement and
 * spoofed x-keyward-* headers. Pure; unknown or missing fields are treated as absent.
 *
 * Route requirements: the scopes of context_extensions (`required_scopes`,
 * `any_scopes`, set by Envoy per route) and of the first matching route rule
 * (KEYWARD_ROUTES_FILE) must all hold. A rule with `public: true` allows without a
 * key, unless context_extensions ask for scopes.
 */
import type { CheckRequest } from '../gen/envoy/service/auth/v3/external_auth';
import { asciiLower, extractCredential, headersOfMap, type HeaderList } from './credentials';
import type { RequestAttributes } from '../grpc/check-codec';
import type { CheckInput } from './decision';
import type { RouteTable } from './routes';
import { parseScopeList, type ScopeRequirement } from './scopes';

export const IDENTITY_PREFIX = 'x-keyward-';

export interface RequestReaderOptions {
  /** Lower-case header names that may carry the key. */
  credentialHeaders: readonly string[];
  routes: RouteTable;
}

/** The request's headers as [name, value] pairs, from header_map when Envoy sent it. */
export function headerList(req: CheckRequest): HeaderList {
  const http = req.attributes?.request?.http;
  if (!http) return [];
  const raw = http.headerMap?.headers;
  if (raw && raw.length > 0) {
    return raw.map((h) => [asciiLower(h.key), h.rawValue && h.rawValue.length > 0 ? h.rawValue.toString('latin1') : h.value] as const);
  }
  return headersOfMap(http.headers ?? {});
}

/** The decision's attributes of a decoded CheckRequest (the hot path reads them from the bytes: wire.ts). */
export function attributesOf(req: CheckRequest): RequestAttributes {
  const http = req.attributes?.request?.http;
  return {
    method: http?.method ?? '',
    path: http?.path ?? '',
    host: http?.host ?? '',
    headers: headerList(req),
    contextExtensions: req.attributes?.contextExtensions ?? {},
  };
}

function header(list: HeaderList, name: string): string | undefined {
  for (const [k, v] of list) if (k === name) return v;
  return undefined;
}

function hasScopes(r: ScopeRequirement): boolean {
  return r.all.length > 0 || r.any.length > 0;
}

export type CheckRequestInput = CheckInput & { headers: HeaderList; requestId?: string; method: string; path: string };

export function readCheckRequest(req: CheckRequest, opts: RequestReaderOptions): CheckRequestInput {
  return readAttributes(attributesOf(req), opts);
}

const NO_SCOPES: ScopeRequirement = { all: [], any: [] };

/**
 * x-request-id as logged and stored with usage: at most 128 characters of
 * [A-Za-z0-9._:-] (Envoy's UUIDs and common trace ids), and never anything shaped like
 * an API key or admin token (a client could put its key there); otherwise dropped.
 */
export function safeRequestId(v: string): string | undefined {
  if (v.length === 0 || v.length > 128 || !REQUEST_ID.test(v)) return undefined;
  return SECRET_PREFIX.test(v) ? undefined : v;
}
const REQUEST_ID = /^[A-Za-z0-9._:-]+$/;
/** The prefixes of keys (kw_live_, kw_test_) and admin tokens (kwadm_). */
const SECRET_PREFIX = /kw_(live|test)_|kwadm_/;

export function readAttributes(a: RequestAttributes, opts: RequestReaderOptions): CheckRequestInput {
  const headers = a.headers;
  const ext = a.contextExtensions;
  const req = ext.required_scopes;
  const any = ext.any_scopes;
  const fromEnvoy: ScopeRequirement = req || any ? { all: parseScopeList(req ?? ''), any: parseScopeList(any ?? '') } : NO_SCOPES;
  const method = (a.method || header(headers, ':method') || '').toUpperCase();
  const host = a.host || header(headers, ':authority') || header(headers, 'host') || '';
  const path = a.path || header(headers, ':path') || '/';
  const rule = opts.routes.size > 0 ? opts.routes.match(method, host, path) : undefined;
  const envoyAsks = hasScopes(fromEnvoy);
  const spoofed: string[] = [];
  let seen: Set<string> | undefined; // linear in the header count, however many are sent
  let requestId: string | undefined;
  for (const [k, v] of headers) {
    if (k.charCodeAt(0) !== 120) continue; // 'x'
    if (k.startsWith(IDENTITY_PREFIX)) {
      seen ??= new Set();
      if (!seen.has(k)) {
        seen.add(k);
        spoofed.push(k);
      }
    } else if (requestId === undefined && k === 'x-request-id') requestId = safeRequestId(v);
  }
  const requirements: ScopeRequirement[] = [];
  if (envoyAsks) requirements.push(fromEnvoy);
  if (rule && !rule.public && hasScopes(rule.requirement)) requirements.push(rule.requirement);
  return {
    headers,
    requestId,
    method,
    path,
    credential: extractCredential(headers, opts.credentialHeaders),
    requirements,
    public: rule?.public === true && !envoyAsks,
    route: rule?.rule,
    spoofed,
  };
}
