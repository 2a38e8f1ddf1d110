/**
 * The stored records and their MikroORM schemas. The same schemas run on SQLite and
 * PostgreSQL; the tables themselves are created by the migrations in ./migrations.
 *
 * Secrets are never stored: an API key or admin token is kept only as its keyed hash
 * (HMAC-SHA256, hex), plus the display prefix and last-4 hint of a key.
 */
import { BigIntType, EntitySchema } from '@mikro-orm/core';

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
  createdAt!: Date;
  updatedAt!: Date;
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
  createdAt!: Date;
  updatedAt!: Date;
  expiresAt?: Date | null;
  lastUsedAt?: Date | null;
  revokedAt?: Date | null;
  revokedBy?: string | null;
  revokeReason?: string | null;
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
  outcome!: 'success' | 'denied';
  reason?: string | null;
  peer?: string | null;
}

/** An administrator token, by keyed hash only. */
export class AdminTokenRecord {
  id!: string;
  tokenHash!: string;
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
    createdAt: { type: 'datetime' },
    updatedAt: { type: 'datetime' },
  },
});

export const ApiKeySchema = new EntitySchema<ApiKeyRecord>({
  class: ApiKeyRecord,
  tableName: 'api_keys',
  indexes: [{ properties: ['organizationId', 'id'] }],
  properties: {
    id: { type: 'string', primary: true, length: 32 },
    organizationId: { type: 'string', length: 32 },
    name: { type: 'string', length: 200 },
    environment: { type: 'string', length: 8 },
    scopes: { type: 'json' },
    prefix: { type: 'string', length: 16 },
    hint: { type: 'string', length: 8 },
    keyHash: { type: 'string', length: 64, unique: true },
    createdAt: { type: 'datetime' },
    updatedAt: { type: 'datetime' },
    expiresAt: { type: 'datetime', nullable: true },
    lastUsedAt: { type: 'datetime', nullable: true },
    revokedAt: { type: 'datetime', nullable: true },
    revokedBy: { type: 'string', length: 64, nullable: true },
    revokeReason: { type: 'string', length: 500, nullable: true },
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
  },
});

export const AdminTokenSchema = new EntitySchema<AdminTokenRecord>({
  class: AdminTokenRecord,
  tableName: 'admin_tokens',
  properties: {
    id: { type: 'string', primary: true, length: 32 },
    tokenHash: { type: 'string', length: 64, unique: true },
    label: { type: 'string', length: 64 },
    createdAt: { type: 'datetime' },
  },
});

export const ALL_SCHEMAS = [OrganizationSchema, ApiKeySchema, AuditEventSchema, AdminTokenSchema];
