/**
 * KeyAdmin's proto messages to and from the control plane's domain types. Reading a
 * request never throws (validation is the domain's); a message never carries a hash.
 */
import type { AuditEventRecord, OrganizationRecord } from '../../store/entities';
import type { NewOrganization, OrganizationPatch } from '../../admin/organizations';
import type { KeyPatch, KeyStatus as KeyStatusName, KeyWithStatus, NewKey } from '../../admin/keys';
import type { QuotaState, RateLimitState } from '../../admin/limits';
import type { AuditQuery } from '../../admin/audit';
import type { UsageReport, UsageTotals as UsageSums } from '../../usage/types';
import type { RateLimiterStats as LimiterCounters } from '../../limits/types';
import {
  Environment,
  KeyStatus,
  type ApiKey,
  type AuditEvent,
  type CreateKeyRequest,
  type CreateOrganizationRequest,
  type ListAuditEventsRequest,
  type Organization,
  type Quota,
  type RateLimiterStats,
  type RateLimitStatus,
  type UpdateKeyRequest,
  type UpdateOrganizationRequest,
  type UsageStats,
  type UsageTotals,
} from '../../gen/keyward/admin/v1/key_admin';

import { parsePercents } from '../../store/key-lookup';
import { DEFAULT_QUOTA_ALERT_PERCENTS } from '../../events/observe';

// ------------------------------------------------------------------ requests

export function newOrganization(req: CreateOrganizationRequest): NewOrganization {
  return {
    name: req.name,
    maxKeys: req.maxKeys,
    rateLimitPerMinute: req.rateLimitPerMinute,
    monthlyQuota: req.monthlyQuota,
    billingAnchorDay: req.billingAnchorDay,
    quotaAlertPercents: req.quotaAlertPercents,
  };
}

export function organizationPatch(req: UpdateOrganizationRequest): OrganizationPatch {
  return {
    id: req.id,
    name: req.name,
    active: req.active,
    maxKeys: req.maxKeys,
    rateLimitPerMinute: req.rateLimitPerMinute,
    monthlyQuota: req.monthlyQuota,
    billingAnchorDay: req.billingAnchorDay,
    quotaAlertPercents: req.quotaAlertPercents,
  };
}

/** The environment as the domain reads it: undefined when unspecified, 'live', 'test', or the unknown value as text. */
export function environmentValue(environment: Environment): string | undefined {
  if (environment === Environment.ENVIRONMENT_UNSPECIFIED) return undefined;
  if (environment === Environment.ENVIRONMENT_LIVE) return 'live';
  if (environment === Environment.ENVIRONMENT_TEST) return 'test';
  return String(environment);
}

export function newKey(req: CreateKeyRequest): NewKey {
  return {
    organizationId: req.organizationId,
    name: req.name,
    environment: environmentValue(req.environment),
    scopes: req.scopes,
    metadata: req.metadata,
    expiresInDays: req.expiresInDays,
    expiresAt: req.expiresAt,
    rateLimitPerMinute: req.rateLimitPerMinute,
  };
}

export function keyPatch(req: UpdateKeyRequest): KeyPatch {
  return {
    id: req.id,
    name: req.name,
    scopes: req.scopes?.values,
    expiresAt: req.expiresAt,
    clearExpiresAt: req.clearExpiresAt,
    rateLimitPerMinute: req.rateLimitPerMinute,
    clearRateLimitPerMinute: req.clearRateLimitPerMinute,
    metadata: req.metadata?.entries,
    enabled: req.enabled,
  };
}

export function auditQuery(req: ListAuditEventsRequest): AuditQuery {
  return {
    organizationId: req.organizationId,
    keyId: req.keyId,
    action: req.action,
    startTime: req.startTime,
    endTime: req.endTime,
    pageSize: req.pageSize,
    pageToken: req.pageToken,
  };
}

// ------------------------------------------------------------------ messages

export function organizationMessage(org: OrganizationRecord): Organization {
  return {
    id: org.id,
    name: org.name,
    active: org.active,
    maxKeys: org.maxKeys,
    rateLimitPerMinute: org.rateLimitPerMinute,
    monthlyQuota: Number(org.monthlyQuota),
    billingAnchorDay: org.billingAnchorDay,
    createdAt: org.createdAt,
    updatedAt: org.updatedAt,
    deletedAt: org.deletedAt ?? undefined,
    quotaAlertPercents: org.quotaAlertPercents ? parsePercents(org.quotaAlertPercents) : [...DEFAULT_QUOTA_ALERT_PERCENTS],
  };
}

const KEY_STATUS: Record<KeyStatusName, KeyStatus> = {
  active: KeyStatus.KEY_STATUS_ACTIVE,
  revoked: KeyStatus.KEY_STATUS_REVOKED,
  expired: KeyStatus.KEY_STATUS_EXPIRED,
  disabled: KeyStatus.KEY_STATUS_DISABLED,
};

export function keyMessage({ key, status }: KeyWithStatus): ApiKey {
  return {
    id: key.id,
    organizationId: key.organizationId,
    name: key.name,
    environment: key.environment === 'test' ? Environment.ENVIRONMENT_TEST : Environment.ENVIRONMENT_LIVE,
    scopes: [...key.scopes],
    prefix: key.prefix,
    hint: key.hint,
    createdAt: key.createdAt,
    updatedAt: key.updatedAt,
    expiresAt: key.expiresAt ?? undefined,
    lastUsedAt: key.lastUsedAt ?? undefined,
    revokedAt: key.revokedAt ?? undefined,
    revokedBy: key.revokedBy ?? '',
    revokeReason: key.revokeReason ?? '',
    rateLimitPerMinute: key.rateLimitPerMinute ?? undefined,
    metadata: { ...key.metadata },
    status: KEY_STATUS[status],
    replacedByKeyId: key.replacedByKeyId ?? '',
    rotatedFromKeyId: key.rotatedFromKeyId ?? '',
    enabled: !key.disabledAt,
    disabledAt: key.disabledAt ?? undefined,
  };
}

export function auditMessage(event: AuditEventRecord): AuditEvent {
  return {
    id: Number(event.id),
    time: event.at,
    actor: event.actor,
    action: event.action,
    organizationId: event.organizationId ?? '',
    keyId: event.keyId ?? '',
    outcome: event.outcome,
    reason: event.reason ?? '',
    peer: event.peer ?? '',
    occurrences: Number(event.occurrences ?? 1),
    firstSeen: event.firstSeen ? new Date(event.firstSeen) : undefined,
    lastSeen: event.lastSeen ? new Date(event.lastSeen) : undefined,
    clientAddress: event.clientAddress ?? '',
  };
}

export function rateLimitStatusMessage(state: RateLimitState): RateLimitStatus {
  return {
    keyId: state.keyId,
    limit: state.limit,
    remaining: state.remaining,
    resetSeconds: state.resetSeconds,
    limitSource: state.limitSource,
  };
}

export function rateLimiterStatsMessage(stats: LimiterCounters): RateLimiterStats {
  return {
    backend: stats.backend,
    trackedKeys: stats.trackedKeys,
    allowed: stats.allowed,
    limited: stats.limited,
    redisErrors: stats.redisErrors,
    fallbackDecisions: stats.fallbackDecisions,
  };
}

export function quotaMessage(quota: QuotaState): Quota {
  return {
    organizationId: quota.organizationId,
    limit: quota.limit,
    used: quota.used,
    remaining: quota.remaining,
    percentUsed: quota.percentUsed,
    periodStart: quota.periodStart,
    periodEnd: quota.periodEnd,
  };
}

function usageTotalsMessage(sums: UsageSums): UsageTotals {
  return {
    requests: sums.requests,
    errors4xx: sums.errors4xx,
    errors5xx: sums.errors5xx,
    tokens: sums.tokens,
    costUsd: sums.costUsd,
    ...(sums.avgDurationMs !== undefined && { avgDurationMs: sums.avgDurationMs }),
    ...(sums.p95DurationMs !== undefined && { p95DurationMs: sums.p95DurationMs }),
  };
}

export function usageStatsMessage(report: UsageReport): UsageStats {
  return {
    organizationId: report.organizationId,
    month: report.month,
    keyId: report.keyId,
    totals: usageTotalsMessage(report.totals),
    byEndpoint: report.byEndpoint.map((e) => ({ endpoint: e.endpoint, method: e.method, totals: usageTotalsMessage(e.totals) })),
    byKey: report.byKey.map((k) => ({ keyId: k.keyId, totals: usageTotalsMessage(k.totals) })),
    byDay: report.byDay.map((d) => ({ day: d.day, totals: usageTotalsMessage(d.totals) })),
    periodStart: report.periodStart,
    periodEnd: report.periodEnd,
    billingPeriod: report.billingPeriod,
  };
}
