/**
 * Whether a key may be used at `now`: the one rule the Check's decision and KeyAdmin's
 * authentication share. A key is unusable once revoked, once its expiry has passed
 * (expiresAt <= now), or while its organization is missing or inactive — in that order.
 *
 * Times are epoch milliseconds; null means never (not revoked, no expiry).
 */
export type KeyUnusable = 'revoked' | 'expired' | 'organization_inactive';

export interface UsableKeyFields {
  revokedAt: number | null;
  expiresAt: number | null;
}

export interface UsableOrgFields {
  active: boolean;
}

/** undefined: usable; otherwise the first reason it is not. */
export function keyUsable(key: UsableKeyFields, org: UsableOrgFields | null | undefined, nowMs: number): KeyUnusable | undefined {
  if (key.revokedAt !== null) return 'revoked';
  if (key.expiresAt !== null && key.expiresAt <= nowMs) return 'expired';
  if (!org || !org.active) return 'organization_inactive';
  return undefined;
}
