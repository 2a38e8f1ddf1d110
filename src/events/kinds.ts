/**
 * The events keyward tells about: security events seen on the request path, and
 * lifecycle changes made through KeyAdmin. Every event is first an audit row (its
 * `action` is the event's kind for security events, or the admin action for a
 * change); webhooks subscribe to the kinds below, and their dispatcher reads the audit
 * log as its outbox (docs/events-webhooks.md).
 */

/** Security events: aggregated per kind and key (or organization) per window. */
export const SECURITY_EVENT_KINDS = [
  'key.revoked_used',
  'key.expired_used',
  'key.disabled_used',
  'key.inactive_org_used',
  'key.rate_limited',
  'org.quota_exceeded',
  'org.quota_threshold',
  'key.expiring',
] as const;

/** Lifecycle events, from successful admin changes. */
export const LIFECYCLE_EVENT_KINDS = ['key.created', 'key.rotated', 'key.revoked', 'key.disabled', 'key.enabled', 'org.deleted'] as const;

export type SecurityEventKind = (typeof SECURITY_EVENT_KINDS)[number];
export type LifecycleEventKind = (typeof LIFECYCLE_EVENT_KINDS)[number];
export type EventKind = SecurityEventKind | LifecycleEventKind;

/** Every kind a webhook can subscribe to. */
export const EVENT_KINDS: readonly EventKind[] = [...SECURITY_EVENT_KINDS, ...LIFECYCLE_EVENT_KINDS];

/** The audit action of each lifecycle event (a successful audit row with it is the event). */
export const LIFECYCLE_AUDIT_ACTIONS: Readonly<Record<LifecycleEventKind, string>> = {
  'key.created': 'key.create',
  'key.rotated': 'key.rotate',
  'key.revoked': 'key.revoke',
  'key.disabled': 'key.disable',
  'key.enabled': 'key.enable',
  'org.deleted': 'organization.delete',
};

/** The event kind an audit row stands for, if any (security kinds are their own actions). */
export function eventKindOfAudit(action: string, outcome: string): EventKind | undefined {
  if ((SECURITY_EVENT_KINDS as readonly string[]).includes(action)) return action as SecurityEventKind;
  if (outcome !== 'success') return undefined;
  for (const kind of LIFECYCLE_EVENT_KINDS) if (LIFECYCLE_AUDIT_ACTIONS[kind] === action) return kind;
  return undefined;
}
