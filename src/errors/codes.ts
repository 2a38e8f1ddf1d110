/**
 * The one wire mapping: every keyward error code, with its gRPC status code, the HTTP
 * status a data-plane denial of that kind gets, and the headers it carries. Anything
 * not in this table is reported as `internal`, with no detail (./wire.ts for gRPC,
 * src/authz/response.ts for Check denials).
 *
 * gRPC status numbers (google.rpc.Code) are used rather than grpc-js's enum so that
 * this table is shared by the admin server (grpc-js status) and the data plane
 * (google.rpc.Status in CheckResponse).
 *
 * Every data-plane denial also carries `x-keyward-error-code: <code>` and
 * `content-type: application/json`; every 401, and the 403 of insufficient_scope,
 * carries an RFC 6750 challenge (challengeOf below); every 429 and 503 carries
 * `retry-after`.
 */
export const GrpcCode = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCodeValue = (typeof GrpcCode)[keyof typeof GrpcCode];

/** The challenge of a 401 for a credential that was given but is not valid (RFC 6750 §3.1 invalid_token). */
export const WWW_AUTHENTICATE = 'Bearer realm="keyward", error="invalid_token"';
/** The challenge of missing_api_key: no credential was given, so no error (RFC 6750 §3.1). */
export const WWW_AUTHENTICATE_MISSING = 'Bearer realm="keyward"';

/**
 * The `www-authenticate` value of a data-plane denial, or undefined for none:
 *  - missing_api_key: WWW_AUTHENTICATE_MISSING;
 *  - any other 401: WWW_AUTHENTICATE;
 *  - insufficient_scope (403): `Bearer realm="keyward", error="insufficient_scope",
 *    scope="<scopes>"`, the scopes space-separated: those the route requires that the
 *    key lacks (`required`), then the alternatives of the unmet any-of list (`any_of`).
 *    Scope characters ([A-Za-z0-9_.:*-]) need no escaping inside the quotes.
 */
export function challengeOf(code: ErrorCode, details?: Readonly<Record<string, unknown>>): string | undefined {
  if (code === 'missing_api_key') return WWW_AUTHENTICATE_MISSING;
  if (code === 'insufficient_scope') {
    const scopes = [...stringsOf(details?.required), ...stringsOf(details?.any_of)];
    return `Bearer realm="keyward", error="insufficient_scope", scope="${scopes.join(' ')}"`;
  }
  return ERROR_TABLE[code].http === 401 ? WWW_AUTHENTICATE : undefined;
}

function stringsOf(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [];
}

export interface WireMapping {
  /** google.rpc.Code. */
  grpc: GrpcCodeValue;
  /** The HTTP status of a data-plane denial with this code, and of a web console API answer (src/console/). */
  http: number;
  /** The safe default message. */
  message: string;
}

export const ERROR_TABLE = {
  // data plane (ext_authz Check) denials
  missing_api_key: { grpc: GrpcCode.UNAUTHENTICATED, http: 401, message: 'an API key is required' },
  invalid_api_key: { grpc: GrpcCode.UNAUTHENTICATED, http: 401, message: 'the API key is not valid' },
  ambiguous_credentials: { grpc: GrpcCode.UNAUTHENTICATED, http: 401, message: 'the request carries more than one different API key' },
  revoked_api_key: { grpc: GrpcCode.UNAUTHENTICATED, http: 401, message: 'the API key has been revoked' },
  expired_api_key: { grpc: GrpcCode.UNAUTHENTICATED, http: 401, message: 'the API key has expired' },
  disabled_api_key: { grpc: GrpcCode.PERMISSION_DENIED, http: 403, message: 'the API key is disabled' },
  insufficient_scope: { grpc: GrpcCode.PERMISSION_DENIED, http: 403, message: 'the API key lacks a scope this route requires' },
  rate_limit_exceeded: { grpc: GrpcCode.RESOURCE_EXHAUSTED, http: 429, message: 'the API key has exceeded its rate limit' },
  monthly_quota_exceeded: { grpc: GrpcCode.RESOURCE_EXHAUSTED, http: 429, message: 'the organization has used its monthly quota' },
  service_unavailable: { grpc: GrpcCode.UNAVAILABLE, http: 503, message: 'the key store is unavailable; retry later' },
  // shared by both planes
  organization_inactive: { grpc: GrpcCode.PERMISSION_DENIED, http: 403, message: 'the organization is inactive' },
  // control plane: authentication and authorization of the caller
  missing_credentials: {
    grpc: GrpcCode.UNAUTHENTICATED,
    http: 401,
    message: 'authorization metadata with a bearer credential is required',
  },
  invalid_credentials: { grpc: GrpcCode.UNAUTHENTICATED, http: 401, message: 'the credential is not valid for this service' },
  permission_denied: { grpc: GrpcCode.PERMISSION_DENIED, http: 403, message: 'the caller may not perform this action' },
  too_many_auth_failures: {
    grpc: GrpcCode.RESOURCE_EXHAUSTED,
    http: 429,
    message: 'too many failed authentications from this address; retry later',
  },
  /** The web console (src/console/): a call without its session's CSRF token, or from another site. */
  csrf_token_invalid: {
    grpc: GrpcCode.PERMISSION_DENIED,
    http: 403,
    message: "the request lacks the session's CSRF token or comes from another site",
  },
  // request validation
  invalid_argument: { grpc: GrpcCode.INVALID_ARGUMENT, http: 400, message: 'the request is invalid' },
  /** Any keyward RPC whose gRPC metadata exceeds MAX_METADATA_BYTES (src/grpc/metadata-limit.ts). */
  metadata_too_large: { grpc: GrpcCode.RESOURCE_EXHAUSTED, http: 431, message: 'the call metadata is larger than this server accepts' },
  // domain
  organization_not_found: { grpc: GrpcCode.NOT_FOUND, http: 404, message: 'organization not found' },
  /** A change to a deleted organization (DeleteOrganization): it can only be read. */
  organization_deleted: { grpc: GrpcCode.FAILED_PRECONDITION, http: 410, message: 'the organization has been deleted' },
  key_not_found: { grpc: GrpcCode.NOT_FOUND, http: 404, message: 'key not found' },
  key_limit_exceeded: { grpc: GrpcCode.RESOURCE_EXHAUSTED, http: 403, message: 'the organization has reached its maximum number of keys' },
  key_revoked: { grpc: GrpcCode.FAILED_PRECONDITION, http: 401, message: 'the key has been revoked' },
  key_expired: { grpc: GrpcCode.FAILED_PRECONDITION, http: 401, message: 'the key has expired' },
  key_already_rotated: { grpc: GrpcCode.FAILED_PRECONDITION, http: 409, message: 'the key has already been rotated' },
  webhook_not_found: { grpc: GrpcCode.NOT_FOUND, http: 404, message: 'webhook not found' },
  // infrastructure
  store_unavailable: { grpc: GrpcCode.UNAVAILABLE, http: 503, message: 'the key store is unavailable; retry later' },
  internal: { grpc: GrpcCode.INTERNAL, http: 500, message: 'internal error' },
} as const satisfies Record<string, WireMapping>;

export type ErrorCode = keyof typeof ERROR_TABLE;

/** The codes a Check can deny with. */
export type DenyCode =
  | 'missing_api_key'
  | 'invalid_api_key'
  | 'ambiguous_credentials'
  | 'revoked_api_key'
  | 'expired_api_key'
  | 'disabled_api_key'
  | 'organization_inactive'
  | 'insufficient_scope'
  | 'rate_limit_exceeded'
  | 'monthly_quota_exceeded'
  | 'service_unavailable';

export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_TABLE, code);
}
