/**
 * Whether a key may be used at `now`: the one rule the Check's decision and KeyAdmin's
 * authentication share. A key is unusable once revoked, once its expiry has passed
 * (expiresAt <= now), while it is disabled, or while its organization is missing or
 * inactive (a deleted organization is inactive) — in that order.
 *
 * Times are epoch milliseconds; null means never (not revoked, no expiry).
 */
export type KeyUnusable = 'revoked' | 'expired' | 'disabled' | 'organization_inactive';

export interface UsableKeyFields {
  revokedAt: number | null;
  expiresAt: number | null;
  /** UpdateKey enabled=false. */
  disabled: boolean;
}

export interface UsableOrgFields {
  active: boolean;
}

/** undefined: usable; otherwise the first reason it is not. */
export function keyUsable(key: UsableKeyFields, org: UsableOrgFields | null | undefined, nowMs: number): KeyUnusable | undefined {
  if (key.revokedAt !== null) return 'revoked';
  if (key.expiresAt !== null && key.expiresAt <= nowMs) return 'expired';
  if (key.disabled) return 'disabled';
  if (!org || !org.active) return 'organization_inactive';
  return undefined;
}
