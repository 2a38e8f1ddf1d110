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
import { asciiLower, extractCredential, type HeaderList } from './credentials';
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
  return Object.entries(http.headers ?? {}).map(([k, v]) => [asciiLower(k), v] as const);
}

function header(list: HeaderList, name: string): string | undefined {
  for (const [k, v] of list) if (k === name) return v;
  return undefined;
}

function hasScopes(r: ScopeRequirement): boolean {
  return r.all.length > 0 || r.any.length > 0;
}

export function readCheckRequest(
  req: CheckRequest,
  opts: RequestReaderOptions,
): CheckInput & { headers: HeaderList; requestId?: string; method: string; path: string } {
  const headers = headerList(req);
  const http = req.attributes?.request?.http;
  const ext = req.attributes?.contextExtensions ?? {};
  const fromEnvoy: ScopeRequirement = { all: parseScopeList(ext.required_scopes ?? ''), any: parseScopeList(ext.any_scopes ?? '') };
  const method = (http?.method || header(headers, ':method') || '').toUpperCase();
  const host = http?.host || header(headers, ':authority') || header(headers, 'host') || '';
  const path = http?.path || header(headers, ':path') || '/';
  const rule = opts.routes.size > 0 ? opts.routes.match(method, host, path) : undefined;
  const envoyAsks = hasScopes(fromEnvoy);
  const spoofed: string[] = [];
  for (const [k] of headers) if (k.startsWith(IDENTITY_PREFIX) && !spoofed.includes(k)) spoofed.push(k);
  const requirements: ScopeRequirement[] = [];
  if (envoyAsks) requirements.push(fromEnvoy);
  if (rule && !rule.public && hasScopes(rule.requirement)) requirements.push(rule.requirement);
  return {
    headers,
    requestId: header(headers, 'x-request-id'),
    method,
    path,
    credential: extractCredential(headers, opts.credentialHeaders),
    requirements,
    public: rule?.public === true && !envoyAsks,
    route: rule?.rule,
    spoofed,
  };
}
