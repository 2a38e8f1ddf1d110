/**
 * The Check decision: a pure function of (request input, key lookup, now). No I/O,
 * no clock reads; the service around it does the lookup and passes the time.
 *
 * Order, cheapest first — a request is denied by the first check it fails:
 *   1. missing credential          missing_api_key        (also: ambiguous_credentials)
 *   2. malformed: format, checksum invalid_api_key        (no lookup is made)
 *   3. unknown key                 invalid_api_key
 *   4. revoked                     revoked_api_key
 *   5. expired                     expired_api_key        (details: expired_at)
 *   6. organization inactive       organization_inactive
 *   7. scopes                      insufficient_scope     (details: required, any_of)
 *   8. rate limit and monthly quota: spent only by requests that passed 1–7 (see limits)
 *   9. allow
 * A store failure for an uncached key yields service_unavailable (or an error, by
 * configuration); it is never an allow.
 */
import type { DenyCode } from '../errors/codes';
import type { QuotaDecision, RateDecision } from '../limits/types';
import { parseKey, type Environment } from '../keys/format';
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
  /** The key's own limit; null: the organization's. */
  rateLimitPerMinute: number | null;
}

export interface OrgView {
  id: string;
  active: boolean;
  rateLimitPerMinute: number;
  monthlyQuota: number;
  billingAnchorDay: number;
}

/** What a Check request asks, read from its attributes (see request.ts). */
export interface CheckInput {
  credential: CredentialResult;
  /**
   * Scope requirements that must all hold: those of context_extensions and of the
   * matched route rule. Empty: any valid key.
   */
  requirements: readonly ScopeRequirement[];
  /** A public route: allowed without examining credentials. */
  public: boolean;
  /** The matched route rule, for logs. */
  route?: string;
  /** x-keyward-* headers the client sent; they never reach the upstream. */
  spoofed: string[];
}

/** The outcome of looking a well-formed key up by its hash. */
export type KeyLookup = { kind: 'found'; key: KeyView; org: OrgView | null } | { kind: 'unknown' } | { kind: 'unavailable' };

export type Decision =
  | { allow: true; key: null }
  | { allow: true; key: KeyView; org: OrgView; rate?: RateDecision }
  | { allow: false; code: DenyCode; key?: KeyView; details?: Record<string, unknown>; rate?: RateDecision; retryAfterSeconds?: number };

/** The key's requests-per-minute limit: its own override, else its organization's; 0 = unlimited. */
export function effectiveRateLimit(key: KeyView, org: OrgView): number {
  return key.rateLimitPerMinute ?? org.rateLimitPerMinute;
}

/**
 * Step 8, pure: the outcome of an allowed request once the limiter and the quota have
 * answered (null: not limited). The caller spends in this order and refunds the rate
 * limit when the quota denies, so a denied request spends nothing.
 */
export function decideLimits(key: KeyView, org: OrgView, rate: RateDecision | null, quota: QuotaDecision | null, nowMs: number): Decision {
  if (rate && !rate.allowed) {
    const retry = Math.max(1, rate.resetSeconds);
    return {
      allow: false,
      code: 'rate_limit_exceeded',
      key,
      rate,
      retryAfterSeconds: retry,
      details: { limit: rate.limit, retry_after_seconds: retry },
    };
  }
  if (quota && !quota.allowed) {
    const retry = Math.max(1, Math.ceil((quota.period.end.getTime() - nowMs) / 1000));
    // The caller refunds the rate-limit request this one spent; the headers say so.
    const refunded = rate && { ...rate, remaining: Math.min(rate.limit, rate.remaining + 1), resetSeconds: 0 };
    return {
      allow: false,
      code: 'monthly_quota_exceeded',
      key,
      ...(refunded && { rate: refunded }),
      retryAfterSeconds: retry,
      details: { limit: quota.limit, used: quota.used, period_end: quota.period.end.toISOString(), retry_after_seconds: retry },
    };
  }
  return { allow: true, key, org, ...(rate && { rate }) };
}

// keyToLookUp and decide both ask about the same text in one Check: remember the last answer.
let lastText: string | undefined;
let lastWellFormed = false;
function wellFormed(text: string): boolean {
  if (text !== lastText) {
    lastWellFormed = parseKey(text).ok;
    lastText = text;
  }
  return lastWellFormed;
}

/** The key text to look up, when steps 1–2 pass; undefined otherwise. */
export function keyToLookUp(input: CheckInput): string | undefined {
  if (input.public || input.credential.kind !== 'found') return undefined;
  return wellFormed(input.credential.key) ? input.credential.key : undefined;
}

export function decide(input: CheckInput, lookup: KeyLookup | undefined, nowMs: number): Decision {
  if (input.public) return { allow: true, key: null };
  const cred = input.credential;
  if (cred.kind === 'missing') return { allow: false, code: 'missing_api_key' };
  if (cred.kind === 'ambiguous') return { allow: false, code: 'ambiguous_credentials' };
  if (!wellFormed(cred.key)) return { allow: false, code: 'invalid_api_key' };
  if (!lookup || lookup.kind === 'unknown') return { allow: false, code: 'invalid_api_key' };
  if (lookup.kind === 'unavailable') return { allow: false, code: 'service_unavailable' };
  const { key, org } = lookup;
  if (key.revokedAt !== null) return { allow: false, code: 'revoked_api_key', key };
  if (key.expiresAt !== null && key.expiresAt <= nowMs) {
    return { allow: false, code: 'expired_api_key', key, details: { expired_at: new Date(key.expiresAt).toISOString() } };
  }
  if (!org || !org.active) return { allow: false, code: 'organization_inactive', key };
  let required: string[] | undefined;
  let anyOf: string[] | undefined;
  for (const req of input.requirements) {
    const missing = missingScopes(key.scopes, req);
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
  return { allow: true, key, org };
}
