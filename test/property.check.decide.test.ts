/** Property-based tests of decide + toCheckResponse, directly (no gRPC): the documented order of checks. */
import fc from 'fast-check';
import { generateKey, parseKey } from '../src/keys/format';
import { decide, keyToLookUp, type CheckInput, type KeyLookup, type KeyView, type OrgView } from '../src/authz/decision';
import { toCheckResponse } from '../src/authz/response';
import { ERROR_TABLE, type DenyCode } from '../src/errors/codes';
import type { CredentialResult } from '../src/authz/credentials';
import type { HeaderValueOption } from '../src/gen/envoy/config/core/v3/base';
import { parseDenyBody } from './support/deny-body';

describe('decide and toCheckResponse (property-based, no gRPC)', () => {
  const VALID = [generateKey('live'), generateKey('test')];
  const scope = fc.constantFrom('chat', 'admin', 'agents:read', 'agents:*', '*', 'a*b', 'agents', 'Chat');
  const scopes = fc.uniqueArray(scope, { maxLength: 3 });
  const names = fc.uniqueArray(fc.constantFrom('authorization', 'x-api-key', 'x-keyward-key-id', 'x-keyward-org-id', 'x-keyward-other'), {
    maxLength: 3,
  });
  const credential: fc.Arbitrary<CredentialResult> = fc.oneof(
    fc.constant({ kind: 'missing' as const }),
    names.map((headers) => ({ kind: 'ambiguous' as const, headers })),
    fc
      .tuple(fc.oneof(fc.constantFrom(...VALID), fc.string({ maxLength: 60 })), names)
      .map(([key, headers]) => ({ kind: 'found' as const, key, headers })),
  );
  const input: fc.Arbitrary<CheckInput> = fc
    .record({
      credential,
      requirements: fc.array(fc.record({ all: scopes, any: scopes }), { maxLength: 2 }),
      public: fc.boolean(),
      spoofed: fc.uniqueArray(
        fc.constantFrom('x-keyward-key-id', 'x-keyward-org-id', 'x-keyward-scopes', 'x-keyward-environment', 'x-keyward-other'),
        { maxLength: 3 },
      ),
    })
    // As the request reader sets it: the key's text when it is well formed and the route is not public.
    .map((i) => ({
      ...i,
      wellFormedKey: !i.public && i.credential.kind === 'found' && parseKey(i.credential.key).ok ? i.credential.key : undefined,
    }));
  const NOW = Date.UTC(2026, 0, 15);
  const instant = fc.oneof(fc.constant(null), fc.integer({ min: NOW - 1000, max: NOW + 1000 }), fc.constant(NOW));
  const keyView: fc.Arbitrary<KeyView> = fc.record({
    id: fc.constantFrom('key_1', 'key_2'),
    organizationId: fc.constantFrom('org_1', ''),
    environment: fc.constantFrom('live' as const, 'test' as const),
    scopes,
    expiresAt: instant,
    revokedAt: fc.oneof(fc.constant(null), fc.constant(NOW - 5)),
    disabled: fc.boolean(),
    rateLimitPerMinute: fc.option(fc.nat(100), { nil: null }),
  });
  const orgView: fc.Arbitrary<OrgView> = fc.record({
    id: fc.constant('org_1'),
    active: fc.boolean(),
    rateLimitPerMinute: fc.nat(100),
    monthlyQuota: fc.nat(100),
    billingAnchorDay: fc.integer({ min: 1, max: 28 }),
  });
  const lookup: fc.Arbitrary<KeyLookup | undefined> = fc.oneof(
    fc.constant(undefined),
    fc.constant({ kind: 'unknown' as const }),
    fc.constant({ kind: 'unavailable' as const }),
    fc.record({ kind: fc.constant('found' as const), key: keyView, org: fc.option(orgView, { nil: null }) }),
  );
  const ctx = fc.record({
    credentialHeaders: names,
    spoofed: fc.uniqueArray(fc.constantFrom('x-keyward-key-id', 'x-keyward-other'), { maxLength: 2 }),
  });
  const opts = fc.record({ stripCredential: fc.boolean(), retryAfterSeconds: fc.nat(60) });

  /** Scope grant as documented in scopes.ts: equal, `*`, or a `prefix:*` of the required scope. */
  const grants = (ks: string, r: string) => ks === r || ks === '*' || (ks.endsWith(':*') && r.startsWith(ks.slice(0, -1)));
  const holds = (ks: readonly string[], req: { all: string[]; any: string[] }) =>
    req.all.every((r) => ks.some((k) => grants(k, r))) && (req.any.length === 0 || req.any.some((r) => ks.some((k) => grants(k, r))));

  /** The documented order of checks, cheapest first. */
  function expectedDecision(i: CheckInput, l: KeyLookup | undefined, now: number): 'allow' | DenyCode {
    if (i.public) return 'allow';
    if (i.credential.kind === 'missing') return 'missing_api_key';
    if (i.credential.kind === 'ambiguous') return 'ambiguous_credentials';
    if (!parseKey(i.credential.key).ok) return 'invalid_api_key';
    if (!l || l.kind === 'unknown') return 'invalid_api_key';
    if (l.kind === 'unavailable') return 'service_unavailable';
    if (l.key.revokedAt !== null) return 'revoked_api_key';
    if (l.key.expiresAt !== null && l.key.expiresAt <= now) return 'expired_api_key';
    if (l.key.disabled) return 'disabled_api_key';
    if (!l.org || !l.org.active) return 'organization_inactive';
    return i.requirements.every((r) => holds(l.key.scopes, r)) ? 'allow' : 'insufficient_scope';
  }

  const allHeaderOptions = (r: ReturnType<typeof toCheckResponse>): HeaderValueOption[] => [
    ...(r.okResponse?.headers ?? []),
    ...(r.okResponse?.responseHeadersToAdd ?? []),
    ...(r.deniedResponse?.headers ?? []),
  ];

  it('decides in the documented order and looks up only well-formed keys', () => {
    fc.assert(
      // `now` is often exactly NOW, which expiresAt also often is: expiry is at, not after, expires_at.
      fc.property(input, lookup, fc.oneof(fc.constant(NOW), fc.integer({ min: NOW - 2000, max: NOW + 2000 })), (i, l, now) => {
        const d = decide(i, l, now);
        expect(d.allow ? 'allow' : d.code).toBe(expectedDecision(i, l, now));
        const wanted = !i.public && i.credential.kind === 'found' && parseKey(i.credential.key).ok;
        expect(keyToLookUp(i.credential, i.public)).toBe(wanted && i.credential.kind === 'found' ? i.credential.key : undefined);
      }),
      { numRuns: 2000 },
    );
  });

  it('turns every decision into a response with status set and append === false on every header', () => {
    fc.assert(
      fc.property(input, lookup, ctx, opts, (i, l, c, o) => {
        const d = decide(i, l, NOW);
        const r = toCheckResponse(d, c, o);
        expect(r.status).toBeDefined();
        expect(typeof r.status!.code).toBe('number');
        for (const h of allHeaderOptions(r)) expect(h.append).toBe(false);
        if (d.allow) {
          expect(r.status!.code).toBe(0);
          expect(r.okResponse).toBeDefined();
          expect(r.deniedResponse).toBeUndefined();
        } else {
          expect(r.okResponse).toBeUndefined();
          expect(r.status!.code).toBe(ERROR_TABLE[d.code].grpc);
          expect(r.status!.code).not.toBe(0);
          expect([401, 403, 503]).toContain(r.deniedResponse!.status!.code);
          expect(parseDenyBody(r.deniedResponse!.body).error.code).toBe(d.code);
          expect(r.deniedResponse!.headers.find((h) => h.header?.key === 'x-keyward-error-code')?.header?.value).toBe(d.code);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
