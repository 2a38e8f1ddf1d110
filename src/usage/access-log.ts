/**
 * Envoy HTTP access-log entries (gRPC ALS) → usage events. Pure.
 *
 * Only entries of requests keyward authorized are metered: those whose dynamic
 * metadata carries what keyward's Check returned, under
 * filter_metadata["envoy.filters.http.ext_authz"] with `key_id` and `org_id`
 * (google.protobuf.Struct, which the generated code decodes to a plain object).
 * An entry never counts a request (`requests: 0`): it adds the response code,
 * duration, tokens and cost to the request its allowed Check already counted.
 */
import { safeRequestId } from '../authz/request';
import type { RouteTable } from '../authz/routes/table';
import type { HTTPAccessLogEntry } from '../gen/envoy/data/accesslog/v3/accesslog';
import { RequestMethod } from '../gen/envoy/config/core/v3/base';
import type { Duration } from '../gen/google/protobuf/duration';
import { ID_PATTERN } from '../util/ids';
import { endpointLabel } from './endpoint';
import type { UsageEvent } from './types';
import { USAGE_VALUE_MAX } from './record-usage';

export const EXT_AUTHZ_METADATA_NAMESPACE = 'envoy.filters.http.ext_authz';

export interface AccessLogUsageOptions {
  /** Response header with the tokens used (e.g. x-usage-tokens); matched case-insensitively. */
  tokensHeader: string;
  /** Response header with the cost in USD (e.g. x-usage-cost-usd); matched case-insensitively. */
  costHeader: string;
  /** The Check's route rules, to label an entry without keyward's `endpoint` metadata as the Check would. */
  routes?: RouteTable;
}

const METHODS: Partial<Record<number, string>> = {
  [RequestMethod.GET]: 'GET',
  [RequestMethod.HEAD]: 'HEAD',
  [RequestMethod.POST]: 'POST',
  [RequestMethod.PUT]: 'PUT',
  [RequestMethod.DELETE]: 'DELETE',
  [RequestMethod.CONNECT]: 'CONNECT',
  [RequestMethod.OPTIONS]: 'OPTIONS',
  [RequestMethod.TRACE]: 'TRACE',
  [RequestMethod.PATCH]: 'PATCH',
};

/** An HTTP method token (RFC 9110 tchar), at most 16 characters (the column size). */
const METHOD_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,16}$/;
const INTEGER = /^\d+$/;
const DECIMAL = /^\+?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const MAX_ENDPOINT = 512;
const MAX_REQUEST_ID = 128;

function own<T>(map: Record<string, T> | undefined, key: string): T | undefined {
  return map && Object.prototype.hasOwnProperty.call(map, key) ? map[key] : undefined;
}

/** A header value by name, case-insensitively (Envoy logs lower-case names). */
function header(map: Record<string, string> | undefined, name: string): string | undefined {
  if (!map) return undefined;
  const lower = name.toLowerCase();
  const exact = own(map, lower) ?? own(map, name);
  if (exact !== undefined) return exact;
  for (const k of Object.keys(map)) if (k.toLowerCase() === lower) return map[k];
  return undefined;
}

/** An integer header value from 0 to USAGE_VALUE_MAX.tokens, or undefined. */
export function parseTokens(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const s = v.trim();
  if (!INTEGER.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) && n <= USAGE_VALUE_MAX.tokens ? n : undefined;
}

/** A decimal header value from 0 to USAGE_VALUE_MAX.costUsd, or undefined. */
export function parseCost(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const s = v.trim();
  if (!DECIMAL.test(s)) return undefined;
  const n = Number(s);
  return Number.isFinite(n) && n >= 0 && n <= USAGE_VALUE_MAX.costUsd ? n : undefined;
}

/** Duration → ms, or undefined when absent, negative or beyond USAGE_VALUE_MAX.durationMs. */
function durationMs(d: Duration | undefined): number | undefined {
  if (!d) return undefined;
  const ms = Number(d.seconds) * 1000 + Number(d.nanos) / 1e6;
  return Number.isFinite(ms) && ms >= 0 && ms <= USAGE_VALUE_MAX.durationMs ? ms : undefined;
}

/**
 * The entry's endpoint label: keyward's ext_authz metadata `endpoint` (what the Check
 * counted), else endpointLabel of the request re-matched against the same route rules.
 */
function endpointOf(md: Record<string, unknown>, entry: HTTPAccessLogEntry, method: string, opts: AccessLogUsageOptions): string {
  const fromCheck = own(md, 'endpoint');
  if (typeof fromCheck === 'string' && fromCheck !== '' && !CONTROL_CHARS.test(fromCheck)) return fromCheck.slice(0, MAX_ENDPOINT);
  const req = entry.request;
  const path = req?.path || req?.originalPath || '/';
  const routes = opts.routes;
  const rule = routes && routes.size > 0 ? routes.match(method, req?.authority ?? '', path) : undefined;
  return endpointLabel({ path, routeTemplate: rule?.template });
}
// eslint-disable-next-line no-control-regex -- a label with control characters is not taken from metadata
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

function methodOf(entry: HTTPAccessLogEntry): string {
  const known = METHODS[entry.request?.requestMethod ?? RequestMethod.METHOD_UNSPECIFIED];
  if (known) return known;
  const raw = header(entry.request?.requestHeaders, ':method')?.trim();
  return raw && METHOD_TOKEN.test(raw) ? raw.toUpperCase() : 'UNKNOWN';
}

/**
 * The usage event of one HTTP access-log entry, or undefined when the entry has no
 * keyward metadata (key_id and org_id ids) and is therefore not metered, or when
 * keyward denied the request (the metadata has `error_code`): a denied request is not
 * usage, even when its key was known.
 *
 *  - endpoint: the metadata's `endpoint` (the label the Check counted), else
 *    endpointLabel of request.path (else original_path, else `/`) with the route
 *    rule it matches (opts.routes);
 *  - method: request_method, or the `:method` request header when unspecified, else
 *    `UNKNOWN`;
 *  - statusCode: response.response_code (absent or 0: unknown);
 *  - durationMs: common_properties.duration, else time_to_last_downstream_tx_byte;
 *  - at: common_properties.start_time, else `nowMs`;
 *  - tokens / costUsd: the configured response headers; a value that is not an
 *    integer (tokens) or a number (cost) from 0 to USAGE_VALUE_MAX is ignored, and so
 *    is a duration beyond it.
 */
export function entryToUsage(entry: HTTPAccessLogEntry, opts: AccessLogUsageOptions, nowMs: number): UsageEvent | undefined {
  const common = entry.commonProperties;
  const md: Record<string, unknown> | undefined = own(common?.metadata?.filterMetadata, EXT_AUTHZ_METADATA_NAMESPACE);
  if (!md || typeof md !== 'object') return undefined;
  if (own(md, 'error_code') !== undefined) return undefined;
  const keyId = own(md, 'key_id');
  const orgId = own(md, 'org_id');
  if (typeof keyId !== 'string' || typeof orgId !== 'string') return undefined;
  if (ID_PATTERN.exec(keyId)?.[1] !== 'key' || ID_PATTERN.exec(orgId)?.[1] !== 'org') return undefined;

  const req = entry.request;
  const res = entry.response;
  const method = methodOf(entry);
  const start = common?.startTime?.getTime();
  const event: UsageEvent = {
    at: start !== undefined && Number.isFinite(start) ? start : nowMs,
    organizationId: orgId,
    keyId,
    endpoint: endpointOf(md, entry, method, opts),
    method,
    requests: 0,
    source: 'accesslog',
  };
  const requestId = req?.requestId;
  const safeId = requestId ? safeRequestId(requestId.slice(0, MAX_REQUEST_ID)) : undefined;
  if (safeId) event.requestId = safeId;
  const code = res?.responseCode;
  if (typeof code === 'number' && code > 0) event.statusCode = code;
  const d = durationMs(common?.duration) ?? durationMs(common?.timeToLastDownstreamTxByte);
  if (d !== undefined) event.durationMs = d;
  const tokens = parseTokens(header(res?.responseHeaders, opts.tokensHeader));
  if (tokens !== undefined) event.tokens = tokens;
  const cost = parseCost(header(res?.responseHeaders, opts.costHeader));
  if (cost !== undefined) event.costUsd = cost;
  return event;
}
