/**
 * Decision → CheckResponse, through the one wire table (src/errors/codes.ts).
 *
 * Every response sets `status` explicitly (Envoy reads an unset status as OK) and
 * every header option sets `append` explicitly (Envoy versions disagree on unset).
 *
 * Allowed: status OK; to the upstream x-keyward-key-id, -org-id, -scopes and
 * -environment (append false, so a client's copies are overwritten); other
 * x-keyward-* headers the client sent, and the credential headers (unless
 * configured otherwise), are removed; dynamic_metadata {key_id, org_id, environment,
 * endpoint} (endpoint: the label the Check counted usage under, for the access log);
 * the rate-limit headers go to the client (response_headers_to_add).
 *
 * Denied: status with ErrorInfo{reason: code, domain: keyward}; denied_response
 * with the HTTP status, `content-type: application/json`, `x-keyward-error-code`,
 * `www-authenticate` on 401 and on insufficient_scope (challengeOf), `retry-after` on 429 and 503, the rate-limit headers
 * when the key is rate limited, and the body
 * {"error":{"code","message",...details}}; dynamic_metadata {error_code[, key_id,
 * org_id, environment]} (the key's fields when the key was found).
 */
import { ERROR_TABLE, challengeOf, type DenyCode } from '../errors/codes';
import { ErrorInfo } from '../gen/google/rpc/error_details';
import type { CheckResponse } from '../gen/envoy/service/auth/v3/external_auth';
import type { HeaderValueOption } from '../gen/envoy/config/core/v3/base';
import { ERROR_DOMAIN } from '../errors/wire';
import type { Decision } from './decision';
import { IDENTITY_PREFIX } from './request';
import { RATE_LIMIT_HEADERS, rateLimitPolicy, rateLimitState } from '../limits/limiter';
import type { RateDecision } from '../limits/types';

const IDENTITY_HEADERS = {
  keyId: `${IDENTITY_PREFIX}key-id`,
  orgId: `${IDENTITY_PREFIX}org-id`,
  scopes: `${IDENTITY_PREFIX}scopes`,
  environment: `${IDENTITY_PREFIX}environment`,
} as const;
const ERROR_CODE_HEADER = `${IDENTITY_PREFIX}error-code`;
const IDENTITY_NAMES: readonly string[] = Object.values(IDENTITY_HEADERS);

const NO_BYTES = Buffer.alloc(0);

/** A header set by keyward: always `append: false` (overwrite). */
export function setHeader(key: string, value: string): HeaderValueOption {
  return { header: { key, value, rawValue: NO_BYTES }, append: false, appendAction: 2, keepEmptyValue: false };
}

/** setHeader, deeply frozen: shared by many responses, its bytes encoded once (check-response-encoder.ts). */
function sharedHeader(key: string, value: string): HeaderValueOption {
  const option = setHeader(key, value);
  Object.freeze(option.header);
  return Object.freeze(option);
}

/** Shared by every allowed response, like the lists below (responses are only read, by the encoder). */
const NONE = Object.freeze([]) as never[];
const OK_STATUS = Object.freeze({ code: 0, message: '', details: NONE });

interface IdentityHeaders {
  organizationId: string;
  environment: string;
  scopes: readonly string[];
  /** Frozen: shared by every response of the key. */
  headers: HeaderValueOption[];
  /** The dynamic metadata of the key's last allowed response and its endpoint; frozen, shared while the endpoint repeats. */
  metadata?: Readonly<Record<string, string>>;
  metadataEndpoint?: string;
}

/**
 * The identity headers of recently allowed keys. They are the same for every Check of a
 * key, so they are built once and shared (responses are only read, by the encoder);
 * an entry is rebuilt when its key's organization, environment or scope list (a new
 * list whenever the key is reloaded) differs. Bounded: emptied when full.
 */
const IDENTITY_MEMO = new Map<string, IdentityHeaders>();
const IDENTITY_MEMO_MAX = 10_000;

function identityOf(key: NonNullable<Decision['key']>): IdentityHeaders {
  const memo = IDENTITY_MEMO.get(key.id);
  if (memo && memo.scopes === key.scopes && memo.organizationId === key.organizationId && memo.environment === key.environment) return memo;
  const headers = Object.freeze([
    sharedHeader(IDENTITY_HEADERS.keyId, key.id),
    sharedHeader(IDENTITY_HEADERS.orgId, key.organizationId),
    sharedHeader(IDENTITY_HEADERS.scopes, key.scopes.join(',')),
    sharedHeader(IDENTITY_HEADERS.environment, key.environment),
  ]) as HeaderValueOption[];
  if (IDENTITY_MEMO.size >= IDENTITY_MEMO_MAX) IDENTITY_MEMO.clear();
  const entry: IdentityHeaders = { organizationId: key.organizationId, environment: key.environment, scopes: key.scopes, headers };
  IDENTITY_MEMO.set(key.id, entry);
  return entry;
}

/** The allowed response's dynamic_metadata {key_id, org_id, environment[, endpoint]}, shared while the key's endpoint repeats. */
function allowMetadata(
  identity: IdentityHeaders,
  key: NonNullable<Decision['key']>,
  endpoint: string | undefined,
): Record<string, unknown> {
  if (identity.metadata !== undefined && identity.metadataEndpoint === endpoint) return identity.metadata;
  const metadata: Record<string, string> = { key_id: key.id, org_id: key.organizationId, environment: key.environment };
  if (endpoint !== undefined) metadata.endpoint = endpoint;
  identity.metadata = Object.freeze(metadata);
  identity.metadataEndpoint = endpoint;
  return metadata;
}

/** Per limit: its `x-ratelimit-limit` and `ratelimit-policy` options, the same for every Check under it. */
const LIMIT_MEMO = new Map<number, readonly [HeaderValueOption, HeaderValueOption]>();
const LIMIT_MEMO_MAX = 1000;

/** rateLimitHeaders (src/limits/limiter.ts) as header options, in its order; the per-limit ones shared. */
function rateLimitOptions(d: RateDecision): HeaderValueOption[] {
  const h = RATE_LIMIT_HEADERS;
  let fixed = LIMIT_MEMO.get(d.limit);
  if (!fixed) {
    fixed = [sharedHeader(h.limit, String(d.limit)), sharedHeader(h.policy, rateLimitPolicy(d.limit))];
    if (LIMIT_MEMO.size >= LIMIT_MEMO_MAX) LIMIT_MEMO.clear();
    LIMIT_MEMO.set(d.limit, fixed);
  }
  return [
    fixed[0],
    setHeader(h.remaining, String(d.remaining)),
    setHeader(h.reset, String(d.resetSeconds)),
    fixed[1],
    setHeader(h.ratelimit, rateLimitState(d.remaining, d.resetSeconds)),
  ];
}

export interface ResponseOptions {
  /** Remove the credential headers from the upstream request. */
  stripCredential: boolean;
  /** retry-after (seconds) on service_unavailable. */
  retryAfterSeconds: number;
}

export interface ResponseContext {
  /** Headers that carried the credential. */
  credentialHeaders: readonly string[];
  /** x-keyward-* headers the client sent, each once. */
  spoofed: readonly string[];
  /** The endpoint label of an allowed Check with a key (dynamic_metadata `endpoint`). */
  endpoint?: string;
}

const errorInfoCache = new Map<string, Buffer>();
function errorInfo(code: DenyCode): Buffer {
  let encoded = errorInfoCache.get(code);
  if (!encoded) {
    encoded = Buffer.from(ErrorInfo.encode({ reason: code, domain: ERROR_DOMAIN, metadata: {} }).finish());
    errorInfoCache.set(code, encoded);
  }
  return encoded;
}

export function toCheckResponse(decision: Decision, ctx: ResponseContext, opts: ResponseOptions): CheckResponse {
  if (decision.allow) {
    const key = decision.key;
    const credentialHeaders = ctx.credentialHeaders;
    // The credential headers are unique (credentials.ts): the usual list is them, shared.
    let remove: readonly string[] = opts.stripCredential ? credentialHeaders : NONE;
    const identity = key ? identityOf(key) : undefined;
    const metadata = key ? allowMetadata(identity!, key, ctx.endpoint) : {};
    // Identity headers keyward sets overwrite the client's; the rest are removed.
    // (spoofed is unique: only the few credential headers can already be listed)
    for (let i = 0; i < ctx.spoofed.length; i++) {
      const h = ctx.spoofed[i]!;
      if (!(key && IDENTITY_NAMES.includes(h)) && !(opts.stripCredential && credentialHeaders.includes(h))) {
        if (remove === credentialHeaders || remove === NONE) remove = [...remove];
        (remove as string[]).push(h);
      }
    }
    const toClient: HeaderValueOption[] = key && decision.rate ? rateLimitOptions(decision.rate) : NONE;
    return {
      status: OK_STATUS,
      okResponse: {
        headers: identity ? identity.headers : NONE,
        headersToRemove: remove.length > 0 ? (remove as string[]) : NONE,
        dynamicMetadata: undefined,
        responseHeadersToAdd: toClient,
        queryParametersToSet: NONE,
        queryParametersToRemove: NONE,
      },
      dynamicMetadata: metadata,
    };
  }

  const wire = ERROR_TABLE[decision.code];
  const headers = [setHeader('content-type', 'application/json'), setHeader(ERROR_CODE_HEADER, decision.code)];
  const challenge = challengeOf(decision.code, decision.details);
  if (challenge !== undefined) headers.push(setHeader('www-authenticate', challenge));
  if (decision.code === 'service_unavailable') headers.push(setHeader('retry-after', String(opts.retryAfterSeconds)));
  else if (decision.retryAfterSeconds !== undefined) headers.push(setHeader('retry-after', String(decision.retryAfterSeconds)));
  if (decision.rate) headers.push(...rateLimitOptions(decision.rate));
  const body = JSON.stringify({ error: { code: decision.code, message: wire.message, ...decision.details } });
  const metadata: Record<string, unknown> = { error_code: decision.code };
  if (decision.key) {
    metadata.key_id = decision.key.id;
    metadata.org_id = decision.key.organizationId;
    metadata.environment = decision.key.environment;
  }
  return {
    status: {
      code: wire.grpc,
      message: wire.message,
      details: [{ typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo', value: errorInfo(decision.code) }],
    },
    deniedResponse: { status: { code: wire.http }, headers, body },
    dynamicMetadata: metadata,
  };
}
