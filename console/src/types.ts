/**
 * The JSON shapes the console API answers with: KeyAdmin messages as ts-proto's toJSON
 * writes them (camelCase, default values omitted, Timestamps as ISO strings, enums as
 * names). Every field may be absent when it holds its default.
 */

export interface Session {
  kind: 'root' | 'org';
  organizationId?: string;
  keyId?: string;
  csrfToken: string;
  expiresAt: string;
}

export interface Organization {
  id: string;
  name?: string;
  active?: boolean;
  maxKeys?: number;
  rateLimitPerMinute?: number;
  monthlyQuota?: number;
  billingAnchorDay?: number;
  createdAt?: string;
  updatedAt?: string;
  deletedAt?: string;
  quotaAlertPercents?: number[];
}

export type KeyStatus =
  'KEY_STATUS_UNSPECIFIED' | 'KEY_STATUS_ACTIVE' | 'KEY_STATUS_REVOKED' | 'KEY_STATUS_EXPIRED' | 'KEY_STATUS_DISABLED';
export type Environment = 'ENVIRONMENT_UNSPECIFIED' | 'ENVIRONMENT_LIVE' | 'ENVIRONMENT_TEST';

export interface ApiKey {
  id: string;
  organizationId?: string;
  name?: string;
  environment?: Environment;
  scopes?: string[];
  prefix?: string;
  hint?: string;
  createdAt?: string;
  expiresAt?: string;
  lastUsedAt?: string;
  revokedAt?: string;
  revokedBy?: string;
  revokeReason?: string;
  rateLimitPerMinute?: number;
  metadata?: Record<string, string>;
  status?: KeyStatus;
  replacedByKeyId?: string;
  rotatedFromKeyId?: string;
  updatedAt?: string;
  enabled?: boolean;
  disabledAt?: string;
}

export interface AuditEvent {
  id?: number;
  time?: string;
  actor?: string;
  action?: string;
  organizationId?: string;
  keyId?: string;
  outcome?: string;
  reason?: string;
  peer?: string;
  occurrences?: number;
  firstSeen?: string;
  lastSeen?: string;
  clientAddress?: string;
}

export interface RateLimitStatus {
  keyId?: string;
  limit?: number;
  remaining?: number;
  resetSeconds?: number;
  limitSource?: string;
}

export interface Quota {
  organizationId?: string;
  limit?: number;
  used?: number;
  remaining?: number;
  percentUsed?: number;
  periodStart?: string;
  periodEnd?: string;
}

export interface UsageTotals {
  requests?: number;
  errors4xx?: number;
  errors5xx?: number;
  tokens?: number;
  costUsd?: number;
  avgDurationMs?: number;
  p95DurationMs?: number;
}

export interface UsageStats {
  organizationId?: string;
  month?: string;
  keyId?: string;
  totals?: UsageTotals;
  byEndpoint?: { endpoint?: string; method?: string; totals?: UsageTotals }[];
  byKey?: { keyId?: string; totals?: UsageTotals }[];
  byDay?: { day?: string; totals?: UsageTotals }[];
  periodStart?: string;
  periodEnd?: string;
  billingPeriod?: boolean;
}

export interface ListOrganizationsResponse {
  organizations?: Organization[];
  nextPageToken?: string;
}
export interface ListKeysResponse {
  keys?: ApiKey[];
  nextPageToken?: string;
}
export interface ListAuditEventsResponse {
  events?: AuditEvent[];
  nextPageToken?: string;
}
export interface CreateKeyResponse {
  key?: ApiKey;
  secret?: string;
}
export interface RotateKeyResponse {
  newKey?: ApiKey;
  secret?: string;
  oldKey?: ApiKey;
}
export interface DeleteOrganizationResponse {
  organization?: Organization;
  revokedKeys?: number;
}
