/**
 * The Check decision: a pure function of (request input, key lookup, now). No I/O,
 * no clock reads; the service around it does the lookup and passes the time.
 *
 * Order, cheapest first — a request is denied by the first check it fails:
 *   1. missing credential          missing_api_key        (also: ambiguous_credentials)
 *   2. malformed: format, checksum invalid_api_key        (no lookup is made; keyToLookUp)
 *   3. unknown key                 invalid_api_key
 *   4. revoked                     revoked_api_key        (4–6: keyUsable, src/keys/usable.ts)
 *   5. expired                     expired_api_key        (details: expired_at)
 *   5b. disabled                   disabled_api_key       (403)
 *   6. organization inactive       organization_inactive  (also: deleted)
 *   7. scopes                      insufficient_scope     (details: required, any_of)
 *   8. rate limit and monthly quota: spent only by requests that passed 1–7 (spend.ts)
 *   9. allow
 * A store failure for an uncached key yields service_unavailable (or an error, by
 * configuration); it is never an allow.
 */
import type { DenyCode } from '../errors/codes';
import type { QuotaDecision, RateDecision } from '../limits/types';
import { parseKey, type Environment } from '../keys/format';
import { keyUsable, type KeyUnusable } from '../keys/usable';
import type { CredentialResult } from './credentials';
import { missingScopes, type ScopeRequirement } from './scopes';

/** The key fields a decision needs; what the cache holds. */
export interface KeyView {
  id: string;
  organizationId: string;
  environment: Environment;
  scopes: readonly string[];
  /** Epoch ms, or null: never. */
  expiresAt: number | null;
  /** Epoch ms, or null: not revoked. */
  revokedAt: number | null;
  /** UpdateKey enabled=false. */
  disabled: boolean;
  /** The key's own limit; null: the organization's. */
  rateLimitPerMinute: number | null;
}

export interface OrgView {
  id: string;
  /** False when inactive or deleted. */
  active: boolean;
  rateLimitPerMinute: number;
  monthlyQuota: number;
  billingAnchorDay: number;
  /** Percentages of the quota whose crossing is an `org.quota_threshold` event; undefined: 80 and 100. */
  quotaAlertPercents?: readonly number[];
}

/** What a Check request asks, read from its attributes (see request.ts). */
export interface CheckInput {
  credential: CredentialResult;
  /**
   * Scope requirements that must all hold: those of context_extensions and of the
   * matched route rule. Empty: any valid key.
   */
  requirements: readonly ScopeRequirement[];
  /**
   * The credential's text when it is a well-formed key, parsed once when the request
   * was read (keyToLookUp); the text the key is looked up by. Undefined: nothing to
   * look up (public route; missing, ambiguous or malformed credential).
   */
  wellFormedKey: string | undefined;
  /** A public route: allowed without examining credentials. */
  public: boolean;
  /** The matched route rule, for logs. */
  route?: string;
  /** x-keyward-* headers the client sent; they never reach the upstream. */
  spoofed: readonly string[];
}

/** The outcome of looking a well-formed key up by its hash. */
export type KeyLookup = { kind: 'found'; key: KeyView; org: OrgView | null } | { kind: 'unknown' } | { kind: 'unavailable' };

export type Decision =
  | { allow: true; key: null }
  | { allow: true; key: KeyView; org: OrgView; rate?: RateDecision; quota?: QuotaDecision }
  | {
      allow: false;
      code: DenyCode;
      key?: KeyView;
      details?: Record<string, unknown>;
      rate?: RateDecision;
      /** The quota's answer, for monthly_quota_exceeded. */
      quota?: QuotaDecision;
      retryAfterSeconds?: number;
    };

/**
 * Steps 1–2, the one parse of the key in a Check (request.ts calls it when it reads the
 * request): the credential's text when it is a well-formed key (format and checksum),
 * the text to look up; undefined when there is none to look up (a public route, a
 * missing, ambiguous or malformed credential).
 */
export function keyToLookUp(credential: CredentialResult, isPublic: boolean): string | undefined {
  if (isPublic || credential.kind !== 'found') return undefined;
  return parseKey(credential.key).ok ? credential.key : undefined;
}

const UNUSABLE_CODE: Record<KeyUnusable, DenyCode> = {
  revoked: 'revoked_api_key',
  expired: 'expired_api_key',
  disabled: 'disabled_api_key',
  organization_inactive: 'organization_inactive',
};

/**
 * Steps 1–7 and 9. `lookup` is the outcome of looking input.wellFormedKey up (undefined:
 * no lookup was made). An allow with a key still goes through step 8 (spend.ts).
 */
export function decide(input: CheckInput, lookup: KeyLookup | undefined, nowMs: number): Decision {
  if (input.public) return { allow: true, key: null };
  const cred = input.credential;
  if (cred.kind === 'missing') return { allow: false, code: 'missing_api_key' };
  if (cred.kind === 'ambiguous') return { allow: false, code: 'ambiguous_credentials' };
  if (input.wellFormedKey === undefined || !lookup || lookup.kind === 'unknown') return { allow: false, code: 'invalid_api_key' };
  if (lookup.kind === 'unavailable') return { allow: false, code: 'service_unavailable' };
  const { key, org } = lookup;
  const unusable = keyUsable(key, org, nowMs);
  if (unusable === 'expired') {
    return { allow: false, code: UNUSABLE_CODE.expired, key, details: { expired_at: new Date(key.expiresAt!).toISOString() } };
  }
  if (unusable !== undefined) return { allow: false, code: UNUSABLE_CODE[unusable], key };
  let required: string[] | undefined;
  let anyOf: string[] | undefined;
  for (let i = 0; i < input.requirements.length; i++) {
    const missing = missingScopes(key.scopes, input.requirements[i]!);
    if (!missing) continue;
    for (const m of missing.missing) if (!(required ??= []).includes(m)) required.push(m);
    // The body has one any_of: the first unmet list.
    if (missing.anyOf.length && !anyOf) anyOf = missing.anyOf;
  }
  if (required || anyOf) {
    const details: Record<string, unknown> = {};
    if (required) details.required = required;
    if (anyOf) details.any_of = anyOf;
    return { allow: false, code: 'insufficient_scope', key, details };
  }
  // Step 8 (rate limit and monthly quota) is applied by the caller to an allow
  // decision, so that nothing is spent on requests denied above.
  return { allow: true, key, org: org! }; // usable: its organization is there and active
}
