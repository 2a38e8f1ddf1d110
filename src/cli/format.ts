/**
 * Output: JSON views of the KeyAdmin messages (camelCase, timestamps as ISO strings,
 * enums as lowercase words, unset values as null) and the human forms, an aligned
 * table with uppercase headers or `label: value` lines.
 */
import {
  environmentToJSON,
  keyStatusToJSON,
  type ApiKey,
  type AuditEvent,
  type Environment,
  type KeyStatus,
  type Organization,
} from '../gen/keyward/admin/v1/key_admin';

// ---------------------------------------------------------------- primitives

export function iso(d: Date | undefined): string | null {
  return d ? d.toISOString() : null;
}

function orNull(s: string): string | null {
  return s === '' ? null : s;
}

export function environmentName(e: Environment): string {
  return environmentToJSON(e)
    .replace(/^ENVIRONMENT_/, '')
    .toLowerCase();
}

export function keyStatusName(s: KeyStatus): string {
  return keyStatusToJSON(s)
    .replace(/^KEY_STATUS_/, '')
    .toLowerCase();
}

/** Control characters would break the alignment; an empty cell shows as `-`. */
function cell(s: string | null | undefined): string {
  // eslint-disable-next-line no-control-regex -- control characters are what it replaces
  const v = (s ?? '').replace(/[\x00-\x1f\x7f]/g, ' ');
  return v === '' ? '-' : v;
}

/** A plain aligned table, kubectl style: uppercase headers, three spaces between columns. */
export function table(headers: readonly string[], rows: readonly (readonly (string | null | undefined)[])[]): string {
  const lines = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => headers.map((_, i) => cell(r[i])))];
  const widths = headers.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? '').length)));
  return (
    lines
      .map((l) =>
        l
          .map((c, i) => c.padEnd(widths[i] ?? 0))
          .join('   ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

/** `label: value` lines with the values aligned; pairs whose value is undefined are left out. */
export function fields(pairs: readonly (readonly [string, string | null | undefined])[]): string {
  const shown = pairs.filter((p) => p[1] !== undefined);
  const width = Math.max(0, ...shown.map(([label]) => label.length + 1));
  return shown.map(([label, value]) => `${`${label}:`.padEnd(width)}  ${cell(value)}`).join('\n') + '\n';
}

// ---------------------------------------------------------------- JSON views

export function organizationJson(o: Organization) {
  return {
    id: o.id,
    name: o.name,
    active: o.active,
    maxKeys: o.maxKeys,
    rateLimitPerMinute: o.rateLimitPerMinute,
    monthlyQuota: o.monthlyQuota,
    billingAnchorDay: o.billingAnchorDay,
    quotaAlertPercents: o.quotaAlertPercents,
    createdAt: iso(o.createdAt),
    updatedAt: iso(o.updatedAt),
    /** null: not deleted. */
    deletedAt: iso(o.deletedAt),
  };
}

export function keyJson(k: ApiKey) {
  return {
    id: k.id,
    organizationId: k.organizationId,
    name: k.name,
    environment: environmentName(k.environment),
    status: keyStatusName(k.status),
    enabled: k.enabled,
    prefix: k.prefix,
    hint: k.hint,
    scopes: k.scopes,
    /** null: the organization's default applies. */
    rateLimitPerMinute: k.rateLimitPerMinute ?? null,
    metadata: k.metadata,
    createdAt: iso(k.createdAt),
    updatedAt: iso(k.updatedAt),
    expiresAt: iso(k.expiresAt),
    lastUsedAt: iso(k.lastUsedAt),
    revokedAt: iso(k.revokedAt),
    revokedBy: orNull(k.revokedBy),
    revokeReason: orNull(k.revokeReason),
    disabledAt: iso(k.disabledAt),
    replacedByKeyId: orNull(k.replacedByKeyId),
    rotatedFromKeyId: orNull(k.rotatedFromKeyId),
  };
}

export function auditEventJson(e: AuditEvent) {
  return {
    id: e.id,
    time: iso(e.time),
    actor: e.actor,
    action: e.action,
    organizationId: orNull(e.organizationId),
    keyId: orNull(e.keyId),
    outcome: e.outcome,
    reason: orNull(e.reason),
    peer: orNull(e.peer),
    occurrences: e.occurrences || 1,
    firstSeen: e.firstSeen ? iso(e.firstSeen) : null,
    lastSeen: e.lastSeen ? iso(e.lastSeen) : null,
    clientAddress: orNull(e.clientAddress),
  };
}

// ---------------------------------------------------------------- human views

function perMinute(n: number): string {
  return n === 0 ? 'unlimited' : `${n}/min`;
}

function keyRateLimit(k: ApiKey): string {
  return k.rateLimitPerMinute === undefined ? 'organization default' : perMinute(k.rateLimitPerMinute);
}

/** `kw_live_AbCd…wxyz`: the displayable parts of the key. */
function keyShape(k: ApiKey): string {
  return k.prefix || k.hint ? `${k.prefix}…${k.hint}` : '';
}

function metadataText(m: Record<string, string>): string {
  return Object.entries(m)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

export function organizationFields(o: Organization): string {
  return fields([
    ['id', o.id],
    ['name', o.name],
    ['active', String(o.active)],
    ['max keys', String(o.maxKeys)],
    ['rate limit', perMinute(o.rateLimitPerMinute)],
    ['monthly quota', o.monthlyQuota === 0 ? 'unlimited' : String(o.monthlyQuota)],
    ['billing anchor day', String(o.billingAnchorDay)],
    ['quota alerts', o.quotaAlertPercents.map((p) => `${p}%`).join(', ')],
    ['created at', iso(o.createdAt)],
    ['updated at', iso(o.updatedAt)],
    ['deleted at', o.deletedAt ? iso(o.deletedAt) : undefined],
  ]);
}

export function organizationTable(orgs: readonly Organization[]): string {
  return table(
    ['id', 'name', 'active', 'max-keys', 'rate/min', 'monthly-quota', 'anchor-day', 'created'],
    orgs.map((o) => [
      o.id,
      o.name,
      String(o.active),
      String(o.maxKeys),
      o.rateLimitPerMinute === 0 ? 'unlimited' : String(o.rateLimitPerMinute),
      o.monthlyQuota === 0 ? 'unlimited' : String(o.monthlyQuota),
      String(o.billingAnchorDay),
      iso(o.createdAt),
    ]),
  );
}

export function keyFields(k: ApiKey): string {
  const revoked = k.revokedAt !== undefined;
  return fields([
    ['id', k.id],
    ['organization', k.organizationId],
    ['name', k.name],
    ['environment', environmentName(k.environment)],
    ['status', keyStatusName(k.status)],
    ['key', keyShape(k)],
    ['scopes', k.scopes.join(',')],
    ['rate limit', keyRateLimit(k)],
    ['metadata', metadataText(k.metadata)],
    ['created at', iso(k.createdAt)],
    ['updated at', iso(k.updatedAt)],
    ['expires at', k.expiresAt ? iso(k.expiresAt) : 'never'],
    ['last used at', k.lastUsedAt ? iso(k.lastUsedAt) : 'never'],
    ['disabled at', k.disabledAt ? iso(k.disabledAt) : undefined],
    ['revoked at', revoked ? iso(k.revokedAt) : undefined],
    ['revoked by', revoked ? k.revokedBy : undefined],
    ['revoke reason', revoked ? k.revokeReason : undefined],
    ['rotated from', k.rotatedFromKeyId || undefined],
    ['replaced by', k.replacedByKeyId || undefined],
  ]);
}

export function keyTable(keys: readonly ApiKey[]): string {
  return table(
    ['id', 'name', 'env', 'status', 'key', 'scopes', 'rate/min', 'expires', 'last-used', 'created'],
    keys.map((k) => [
      k.id,
      k.name,
      environmentName(k.environment),
      keyStatusName(k.status),
      keyShape(k),
      k.scopes.join(','),
      k.rateLimitPerMinute === undefined ? 'default' : k.rateLimitPerMinute === 0 ? 'unlimited' : String(k.rateLimitPerMinute),
      k.expiresAt ? iso(k.expiresAt) : 'never',
      k.lastUsedAt ? iso(k.lastUsedAt) : 'never',
      iso(k.createdAt),
    ]),
  );
}

export function auditTable(events: readonly AuditEvent[]): string {
  return table(
    ['time', 'actor', 'action', 'outcome', 'organization', 'key', 'reason', 'times', 'client'],
    events.map((e) => [
      iso(e.time),
      e.actor,
      e.action,
      e.outcome,
      e.organizationId,
      e.keyId,
      e.reason,
      String(e.occurrences || 1),
      e.clientAddress,
    ]),
  );
}

/** Printed under a secret in human output. */
export const SECRET_NOTE = 'Store this key now: it is shown only once and cannot be retrieved again.';
