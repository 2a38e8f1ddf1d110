/**
 * Reads what a Check asks from the request's attributes (src/grpc/check-codec.ts): the
 * credential and whether it is a well-formed key, the route's scope requirement and
 * spoofed x-keyward-* headers. Pure; unknown or missing fields are treated as absent.
 *
 * Route requirements: the scopes of context_extensions (`required_scopes`,
 * `any_scopes`, set by Envoy per route) and of the first matching route rule
 * (KEYWARD_ROUTES_FILE) must all hold. A rule with `public: true` allows without a
 * key, unless context_extensions ask for scopes.
 */
import { extractCredential, type HeaderList } from './credentials';
import type { RequestAttributes } from '../grpc/check-codec';
import { keyToLookUp, type CheckInput } from './decision';
import type { RouteTable } from './routes';
import { parseScopeList, type ScopeRequirement } from './scopes';

export const IDENTITY_PREFIX = 'x-keyward-';

export interface RequestReaderOptions {
  /** Lower-case header names that may carry the key. */
  credentialHeaders: readonly string[];
  routes: RouteTable;
}

function header(list: HeaderList, name: string): string | undefined {
  for (let i = 0; i < list.length; i++) if (list[i]![0] === name) return list[i]![1];
  return undefined;
}

function hasScopes(r: ScopeRequirement): boolean {
  return r.all.length > 0 || r.any.length > 0;
}

export type CheckRequestInput = CheckInput & {
  headers: HeaderList;
  requestId?: string;
  method: string;
  path: string;
  /** The matched route rule's template, for the endpoint label. */
  routeTemplate?: string;
  /** context_extensions `keyward_endpoint`, for the endpoint label. */
  extensionEndpoint?: string;
  /** The downstream peer's address Envoy reports ('' when absent), for security events. */
  sourceAddress: string;
};

const NO_SCOPES: ScopeRequirement = { all: [], any: [] };
/** Shared by every request without scope requirements or x-keyward-* headers (only read). */
const NO_REQUIREMENTS: readonly ScopeRequirement[] = Object.freeze([]);
const NO_SPOOFED: readonly string[] = Object.freeze([]);

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

/** What the Check asks, from the request's attributes; the key, if any, is parsed here (keyToLookUp), once. */
export function readAttributes(attributes: RequestAttributes, opts: RequestReaderOptions): CheckRequestInput {
  const headers = attributes.headers;
  const ext = attributes.contextExtensions;
  const req = ext.required_scopes;
  const any = ext.any_scopes;
  const fromEnvoy: ScopeRequirement = req || any ? { all: parseScopeList(req ?? ''), any: parseScopeList(any ?? '') } : NO_SCOPES;
  const method = (attributes.method || header(headers, ':method') || '').toUpperCase();
  const host = attributes.host || header(headers, ':authority') || header(headers, 'host') || '';
  const path = attributes.path || header(headers, ':path') || '/';
  const rule = opts.routes.size > 0 ? opts.routes.match(method, host, path) : undefined;
  const envoyAsks = hasScopes(fromEnvoy);
  let spoofed: string[] | undefined;
  let seen: Set<string> | undefined; // linear in the header count, however many are sent
  let requestId: string | undefined;
  for (let i = 0; i < headers.length; i++) {
    const k = headers[i]![0];
    if (k.charCodeAt(0) !== 120) continue; // 'x'
    if (k.startsWith(IDENTITY_PREFIX)) {
      seen ??= new Set();
      if (!seen.has(k)) {
        seen.add(k);
        (spoofed ??= []).push(k);
      }
    } else if (requestId === undefined && k === 'x-request-id') requestId = safeRequestId(headers[i]![1]);
  }
  const ruleAsks = rule !== undefined && !rule.public && hasScopes(rule.requirement);
  const requirements: readonly ScopeRequirement[] =
    envoyAsks && ruleAsks ? [fromEnvoy, rule.requirement] : envoyAsks ? [fromEnvoy] : ruleAsks ? [rule.requirement] : NO_REQUIREMENTS;
  const credential = extractCredential(headers, opts.credentialHeaders);
  const isPublic = rule?.public === true && !envoyAsks;
  return {
    headers,
    requestId,
    method,
    path,
    credential,
    wellFormedKey: keyToLookUp(credential, isPublic),
    requirements,
    public: isPublic,
    route: rule?.rule,
    routeTemplate: rule?.template,
    extensionEndpoint: ext.keyward_endpoint,
    sourceAddress: attributes.sourceAddress,
    spoofed: spoofed ?? NO_SPOOFED,
  };
}
