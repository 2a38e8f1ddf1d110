/** Stored records to KeyAdmin messages. Never copies a hash or a secret. */
import type { ApiKeyRecord, AuditEventRecord, OrganizationRecord } from '../store/entities';
import { Environment, KeyStatus, type ApiKey, type AuditEvent, type Organization } from '../gen/keyward/admin/v1/key_admin';

export function organizationMessage(o: OrganizationRecord): Organization {
  return {
    id: o.id,
    name: o.name,
    active: o.active,
    maxKeys: o.maxKeys,
    rateLimitPerMinute: o.rateLimitPerMinute,
    monthlyQuota: Number(o.monthlyQuota),
    billingAnchorDay: o.billingAnchorDay,
    createdAt: o.createdAt,
    updatedAt: o.updatedAt,
  };
}

export function keyStatus(k: ApiKeyRecord, now: Date): KeyStatus {
  if (k.revokedAt) return KeyStatus.KEY_STATUS_REVOKED;
  if (k.expiresAt && k.expiresAt.getTime() <= now.getTime()) return KeyStatus.KEY_STATUS_EXPIRED;
  return KeyStatus.KEY_STATUS_ACTIVE;
}

export function keyMessage(k: ApiKeyRecord, now: Date): ApiKey {
  return {
    id: k.id,
    organizationId: k.organizationId,
    name: k.name,
    environment: k.environment === 'test' ? Environment.ENVIRONMENT_TEST : Environment.ENVIRONMENT_LIVE,
    scopes: [...k.scopes],
    prefix: k.prefix,
    hint: k.hint,
    createdAt: k.createdAt,
    updatedAt: k.updatedAt,
    expiresAt: k.expiresAt ?? undefined,
    lastUsedAt: k.lastUsedAt ?? undefined,
    revokedAt: k.revokedAt ?? undefined,
    revokedBy: k.revokedBy ?? '',
    revokeReason: k.revokeReason ?? '',
    rateLimitPerMinute: k.rateLimitPerMinute ?? undefined,
    metadata: { ...k.metadata },
    status: keyStatus(k, now),
    replacedByKeyId: k.replacedByKeyId ?? '',
    rotatedFromKeyId: k.rotatedFromKeyId ?? '',
  };
}

export function auditMessage(e: AuditEventRecord): AuditEvent {
  return {
    id: Number(e.id),
    time: e.at,
    actor: e.actor,
    action: e.action,
    organizationId: e.organizationId ?? '',
    keyId: e.keyId ?? '',
    outcome: e.outcome,
    reason: e.reason ?? '',
    peer: e.peer ?? '',
  };
}
