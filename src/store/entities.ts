/**
 * The stored records and their MikroORM schemas. The same schemas run on SQLite and
 * PostgreSQL; the tables themselves are created by the migrations in ./migrations.
 *
 * Secrets are never stored: an API key or admin token is kept only as its keyed hash
 * (HMAC-SHA256, hex), plus the display prefix and last-4 hint of a key.
 */
// First: MikroORM is loaded with its AsyncLocalStorage instances recorded (see there).
import './orm-async-context';
import { BigIntType, EntitySchema } from '@mikro-orm/core';
import { WEBHOOK_SCHEMAS } from './webhook-entities';

export class OrganizationRecord {
  id!: string;
  name!: string;
  active!: boolean;
  /** Most usable (not revoked, not expired) keys at once. */
  maxKeys!: number;
  /** Default per-key requests per minute; 0 = unlimited. */
  rateLimitPerMinute!: number;
  /** Requests per billing month; 0 = unlimited. */
  monthlyQuota!: number;
  /** 1..28: the day of the month (UTC) on which the quota month starts. */
  billingAnchorDay!: number;
  /** Percentages of the quota whose crossing is an `org.quota_threshold` event, e.g. `80,100`; null: the default (80,100). */
  quotaAlertPercents?: string | null;
  createdAt!: Date;
  updatedAt!: Date;
  /** Set by DeleteOrganization (which also clears `active` and revokes its keys); null: not deleted. */
  deletedAt?: Date | null;
}

export class ApiKeyRecord {
  id!: string;
  organizationId!: string;
  name!: string;
  environment!: 'live' | 'test';
  scopes!: string[];
  /** e.g. `kw_live_AbCd`. */
  prefix!: string;
  /** The key's last 4 characters. */
  hint!: string;
  /** HMAC-SHA256 of the full key with the hash secret, hex. Unique; the lookup index. */
  keyHash!: string;
  /**
   * The id (keys/hash.ts secretId) of the secret keyHash was made with; null for keys
   * stored before it was recorded. Shows how far a rotation of the secret has come.
   */
  hashSecretId?: string | null;
  createdAt!: Date;
  updatedAt!: Date;
  expiresAt?: Date | null;
  lastUsedAt?: Date | null;
  revokedAt?: Date | null;
  revokedBy?: string | null;
  revokeReason?: string | null;
  /** Set while the key is disabled (UpdateKey enabled=false); null: enabled. */
  disabledAt?: Date | null;
  /** The key's own limit; null = the organization's default; 0 = unlimited. */
  rateLimitPerMinute?: number | null;
  metadata!: Record<string, string>;
  replacedByKeyId?: string | null;
  rotatedFromKeyId?: string | null;
}

/** One row of the append-only audit log. Never updated or deleted. */
export class AuditEventRecord {
  id!: number;
  at!: Date;
  actor!: string;
  action!: string;
  organizationId?: string | null;
  keyId?: string | null;
  /** `observed` for security events that are not denials (a quota threshold, a key about to expire). */
  outcome!: 'success' | 'denied' | 'observed';
  reason?: string | null;
  peer?: string | null;
  /**
   * Security events (src/events/): one row per kind (action), subject (the key, or the
   * organization and threshold) and window, unique together; null for other rows.
   */
  subject?: string | null;
  windowStart?: Date | null;
  /** Times the event happened in the window (1 for other rows). */
  occurrences!: number;
  firstSeen?: Date | null;
  lastSeen?: Date | null;
  /** The last client address seen (source address or x-forwarded-for). */
  clientAddress?: string | null;
}

/** An administrator token, by keyed hash only. */
export class AdminTokenRecord {
  id!: string;
  tokenHash!: string;
  /** The id of the secret tokenHash was made with (as ApiKeyRecord.hashSecretId). */
  hashSecretId?: string | null;
  /** `bootstrap` for the one from KEYWARD_ADMIN_TOKEN or generated at first start. */
  label!: string;
  createdAt!: Date;
}

export const OrganizationSchema = new EntitySchema<OrganizationRecord>({
  class: OrganizationRecord,
  tableName: 'organizations',
  properties: {
    id: { type: 'string', primary: true, length: 32 },
    name: { type: 'string', length: 200 },
    active: { type: 'boolean' },
    maxKeys: { type: 'integer' },
    rateLimitPerMinute: { type: 'integer' },
    monthlyQuota: { type: new BigIntType('number') },
    billingAnchorDay: { type: 'smallint' },
    quotaAlertPercents: { type: 'string', length: 64, nullable: true },
    createdAt: { type: 'datetime' },
    updatedAt: { type: 'datetime' },
    deletedAt: { type: 'datetime', nullable: true },
  },
});

export const ApiKeySchema = new EntitySchema<ApiKeyRecord>({
  class: ApiKeyRecord,
  tableName: 'api_keys',
  indexes: [{ properties: ['organizationId', 'id'] }, { properties: ['hashSecretId'] }],
  properties: {
    id: { type: 'string', primary: true, length: 32 },
    organizationId: { type: 'string', length: 32 },
    name: { type: 'string', length: 200 },
    environment: { type: 'string', length: 8 },
    scopes: { type: 'json' },
    prefix: { type: 'string', length: 16 },
    hint: { type: 'string', length: 8 },
    keyHash: { type: 'string', length: 64, unique: true },
    hashSecretId: { type: 'string', length: 16, nullable: true },
    createdAt: { type: 'datetime' },
    updatedAt: { type: 'datetime' },
    expiresAt: { type: 'datetime', nullable: true },
    lastUsedAt: { type: 'datetime', nullable: true },
    revokedAt: { type: 'datetime', nullable: true },
    revokedBy: { type: 'string', length: 64, nullable: true },
    revokeReason: { type: 'string', length: 500, nullable: true },
    disabledAt: { type: 'datetime', nullable: true },
    rateLimitPerMinute: { type: 'integer', nullable: true },
    metadata: { type: 'json' },
    replacedByKeyId: { type: 'string', length: 32, nullable: true },
    rotatedFromKeyId: { type: 'string', length: 32, nullable: true },
  },
});

export const AuditEventSchema = new EntitySchema<AuditEventRecord>({
  class: AuditEventRecord,
  tableName: 'audit_events',
  indexes: [{ properties: ['organizationId', 'id'] }, { properties: ['keyId', 'id'] }, { properties: ['at'] }],
  uniques: [{ properties: ['action', 'subject', 'windowStart'] }],
  properties: {
    id: { type: new BigIntType('number'), primary: true, autoincrement: true },
    at: { type: 'datetime' },
    actor: { type: 'string', length: 64 },
    action: { type: 'string', length: 64 },
    organizationId: { type: 'string', length: 32, nullable: true },
    keyId: { type: 'string', length: 32, nullable: true },
    outcome: { type: 'string', length: 16 },
    reason: { type: 'string', length: 500, nullable: true },
    peer: { type: 'string', length: 128, nullable: true },
    subject: { type: 'string', length: 64, nullable: true },
    windowStart: { type: 'datetime', nullable: true },
    occurrences: { type: 'integer', default: 1 },
    firstSeen: { type: 'datetime', nullable: true },
    lastSeen: { type: 'datetime', nullable: true },
    clientAddress: { type: 'string', length: 64, nullable: true },
  },
});

export const AdminTokenSchema = new EntitySchema<AdminTokenRecord>({
  class: AdminTokenRecord,
  tableName: 'admin_tokens',
  properties: {
    id: { type: 'string', primary: true, length: 32 },
    tokenHash: { type: 'string', length: 64, unique: true },
    hashSecretId: { type: 'string', length: 16, nullable: true },
    label: { type: 'string', length: 64 },
    createdAt: { type: 'datetime' },
  },
});

/**
 * One usage event, kept raw for KEYWARD_USAGE_RETENTION_DAYS. `requests` is 1 for an
 * allowed Check (the authoritative count) and 0 for an event that only adds detail
 * (an access-log entry or a RecordUsage record), so nothing is counted twice.
 */
export class UsageEventRecord {
  id!: number;
  at!: Date;
  organizationId!: string;
  keyId!: string;
  /** x-request-id, when known: joins an access-log entry to its Check. */
  requestId?: string | null;
  /** The path without its query. */
  endpoint!: string;
  method!: string;
  requests!: number;
  statusCode?: number | null;
  durationMs?: number | null;
  tokens?: number | null;
  costUsd?: number | null;
  /** `check`, `accesslog` or `api`. */
  source!: string;
}

/**
 * Usage summed per organization, key, period, endpoint and method; upserted in
 * batches. `period` is `YYYY-MM-DD` in usage_daily and `YYYY-MM` in usage_monthly
 * (UTC). `durationBuckets` is a fixed-bucket latency histogram (see src/usage), so
 * p95 can be computed from the aggregates alone.
 */
export class UsageAggregateRecord {
  organizationId!: string;
  keyId!: string;
  period!: string;
  endpoint!: string;
  method!: string;
  requests!: number;
  errors4xx!: number;
  errors5xx!: number;
  tokens!: number;
  costUsd!: number;
  durationCount!: number;
  durationSumMs!: number;
  durationBuckets!: number[];
}
export class UsageDailyRecord extends UsageAggregateRecord {}
export class UsageMonthlyRecord extends UsageAggregateRecord {}

/**
 * One usage batch that reached the store, by the id the batcher gave it. A batch is
 * written together with its row, in one transaction, and a batch whose id is already
 * here is skipped: a batch retried after an ambiguous failure, or replayed from the
 * usage journal after a crash, is never counted twice. Purged with the raw events.
 */
export class UsageBatchRecord {
  id!: string;
  writtenAt!: Date;
}

/** Requests counted against an organization's quota in one billing period. */
export class QuotaCounterRecord {
  organizationId!: string;
  /** The period's start (UTC, on the organization's anchor day). */
  periodStart!: Date;
  count!: number;
}

export const UsageEventSchema = new EntitySchema<UsageEventRecord>({
  class: UsageEventRecord,
  tableName: 'usage_events',
  indexes: [{ properties: ['organizationId', 'at'] }, { properties: ['at'] }, { properties: ['requestId'] }],
  properties: {
    id: { type: new BigIntType('number'), primary: true, autoincrement: true },
    at: { type: 'datetime' },
    organizationId: { type: 'string', length: 32 },
    keyId: { type: 'string', length: 32 },
    requestId: { type: 'string', length: 128, nullable: true },
    endpoint: { type: 'string', length: 512 },
    method: { type: 'string', length: 16 },
    requests: { type: 'smallint' },
    statusCode: { type: 'smallint', nullable: true },
    durationMs: { type: 'double', nullable: true },
    tokens: { type: new BigIntType('number'), nullable: true },
    costUsd: { type: 'double', nullable: true },
    source: { type: 'string', length: 16 },
  },
});

function aggregateSchema<T extends UsageAggregateRecord>(cls: new () => T, tableName: string, periodLength: number) {
  return new EntitySchema<T>({
    class: cls,
    tableName,
    indexes: [{ properties: ['organizationId', 'period'] as never }],
    properties: {
      organizationId: { type: 'string', length: 32, primary: true },
      keyId: { type: 'string', length: 32, primary: true },
      period: { type: 'string', length: periodLength, primary: true },
      endpoint: { type: 'string', length: 512, primary: true },
      method: { type: 'string', length: 16, primary: true },
      requests: { type: new BigIntType('number') },
      errors4xx: { type: new BigIntType('number') },
      errors5xx: { type: new BigIntType('number') },
      tokens: { type: new BigIntType('number') },
      costUsd: { type: 'double' },
      durationCount: { type: new BigIntType('number') },
      durationSumMs: { type: 'double' },
      durationBuckets: { type: 'json' },
    } as never,
  });
}

export const UsageDailySchema = aggregateSchema(UsageDailyRecord, 'usage_daily', 10);
export const UsageMonthlySchema = aggregateSchema(UsageMonthlyRecord, 'usage_monthly', 7);

export const UsageBatchSchema = new EntitySchema<UsageBatchRecord>({
  class: UsageBatchRecord,
  tableName: 'usage_batches',
  indexes: [{ properties: ['writtenAt'] }],
  properties: {
    id: { type: 'string', length: 32, primary: true },
    writtenAt: { type: 'datetime' },
  },
});

export const QuotaCounterSchema = new EntitySchema<QuotaCounterRecord>({
  class: QuotaCounterRecord,
  tableName: 'quota_counters',
  properties: {
    organizationId: { type: 'string', length: 32, primary: true },
    periodStart: { type: 'datetime', primary: true },
    count: { type: new BigIntType('number') },
  },
});

/**
 * A KeyAdmin call made safe to retry (AIP-155 request_id), remembered for 24 hours
 * (src/admin/requests.ts). Written in the transaction of the change it answered, so
 * "applied" and "remembered" never disagree. (caller, requestId) is the primary key:
 * a concurrent duplicate cannot commit a second time.
 */
export class AdminRequestRecord {
  /** The principal's actor: `admin` (administrator token) or `key:<id>` (an org admin key). */
  caller!: string;
  requestId!: string;
  /** The RPC's name, e.g. `CreateKey`. */
  rpc!: string;
  /** SHA-256 (hex) of the request's canonical JSON without request_id. */
  argsHash!: string;
  /** The response message as sent (protobuf, base64), its secret field emptied. */
  response!: string;
  /** CreateKey/RotateKey: the secret, AES-256-GCM sealed (src/keys/secret-box.ts); null otherwise. */
  sealedSecret?: string | null;
  createdAt!: Date;
}

export const AdminRequestSchema = new EntitySchema<AdminRequestRecord>({
  class: AdminRequestRecord,
  tableName: 'admin_requests',
  indexes: [{ properties: ['createdAt'] }],
  properties: {
    caller: { type: 'string', length: 64, primary: true },
    requestId: { type: 'string', length: 128, primary: true },
    rpc: { type: 'string', length: 64 },
    argsHash: { type: 'string', length: 64 },
    response: { type: 'text' },
    sealedSecret: { type: 'text', nullable: true },
    createdAt: { type: 'datetime' },
  },
});

export const ALL_SCHEMAS = [
  OrganizationSchema,
  ApiKeySchema,
  AuditEventSchema,
  AdminTokenSchema,
  UsageEventSchema,
  UsageDailySchema,
  UsageMonthlySchema,
  UsageBatchSchema,
  QuotaCounterSchema,
  AdminRequestSchema,
  ...WEBHOOK_SCHEMAS,
];
