/**
 * The webhook tables (docs/events-webhooks.md). The audit log is the outbox: the
 * dispatcher reads audit rows after `webhook_cursor.last_audit_id` and writes one
 * `webhook_deliveries` row per subscribed endpoint; workers send them and record each
 * try in `webhook_attempts`. A webhook's signing secret is stored encrypted
 * (AES-256-GCM, src/keys/secret-box.ts), never in clear.
 */
// First: MikroORM is loaded with its AsyncLocalStorage instances recorded (see there).
import './orm-async-context';
import { BigIntType, EntitySchema } from '@mikro-orm/core';

export class WebhookRecord {
  /** `whk_…`. */
  id!: string;
  organizationId!: string;
  url!: string;
  /** Subscribed event kinds (src/events/kinds.ts). */
  events!: string[];
  /** The signing secret, sealed (src/keys/secret-box.ts): `v1.<secretId>.<base64url nonce|ciphertext|tag>`. */
  secretSealed!: string;
  /** Set by UpdateWebhook; an inactive endpoint gets no new deliveries and sends none. */
  active!: boolean;
  /** Set when the endpoint kept failing; cleared by UpdateWebhook(active = true). */
  pausedAt?: Date | null;
  /** Failed attempts since the last success. */
  consecutiveFailures!: number;
  createdAt!: Date;
  updatedAt!: Date;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

/** One event to one endpoint. The body is fixed at dispatch, so every retry sends the same bytes. */
export class WebhookDeliveryRecord {
  id!: number;
  webhookId!: string;
  organizationId!: string;
  /** The audit row the event is; unique per webhook, so an event is queued once. */
  auditEventId!: number;
  /** `evt_<audit id>`: the same for every endpoint, so receivers can deduplicate. */
  eventId!: string;
  kind!: string;
  payload!: string;
  status!: DeliveryStatus;
  attempts!: number;
  /** When it is due; while a worker holds it, the end of that worker's lease. */
  nextAttemptAt!: Date;
  createdAt!: Date;
  lastAttemptAt?: Date | null;
  lastStatusCode?: number | null;
  lastError?: string | null;
  deliveredAt?: Date | null;
}

/** One try of a delivery: the HTTP status (none if no response came) or the error. */
export class WebhookAttemptRecord {
  id!: number;
  deliveryId!: number;
  webhookId!: string;
  at!: Date;
  statusCode?: number | null;
  durationMs!: number;
  /** e.g. `timeout`, `connection_failed`, `blocked_address`, `redirect_not_followed`, `http_500`. */
  error?: string | null;
}

/** The single row (id 1) marking how far the dispatcher has read the audit log. */
export class WebhookCursorRecord {
  id!: number;
  lastAuditId!: number;
  updatedAt!: Date;
}

export const WebhookSchema = new EntitySchema<WebhookRecord>({
  class: WebhookRecord,
  tableName: 'webhooks',
  indexes: [{ properties: ['organizationId', 'id'] }],
  properties: {
    id: { type: 'string', primary: true, length: 32 },
    organizationId: { type: 'string', length: 32 },
    url: { type: 'string', length: 2048 },
    events: { type: 'json' },
    secretSealed: { type: 'string', length: 256 },
    active: { type: 'boolean' },
    pausedAt: { type: 'datetime', nullable: true },
    consecutiveFailures: { type: 'integer' },
    createdAt: { type: 'datetime' },
    updatedAt: { type: 'datetime' },
  },
});

export const WebhookDeliverySchema = new EntitySchema<WebhookDeliveryRecord>({
  class: WebhookDeliveryRecord,
  tableName: 'webhook_deliveries',
  indexes: [{ properties: ['status', 'nextAttemptAt'] }, { properties: ['webhookId', 'id'] }],
  uniques: [{ properties: ['webhookId', 'auditEventId'] }],
  properties: {
    id: { type: new BigIntType('number'), primary: true, autoincrement: true },
    webhookId: { type: 'string', length: 32 },
    organizationId: { type: 'string', length: 32 },
    auditEventId: { type: new BigIntType('number') },
    eventId: { type: 'string', length: 40 },
    kind: { type: 'string', length: 64 },
    payload: { type: 'text' },
    status: { type: 'string', length: 16 },
    attempts: { type: 'integer' },
    nextAttemptAt: { type: 'datetime' },
    createdAt: { type: 'datetime' },
    lastAttemptAt: { type: 'datetime', nullable: true },
    lastStatusCode: { type: 'smallint', nullable: true },
    lastError: { type: 'string', length: 64, nullable: true },
    deliveredAt: { type: 'datetime', nullable: true },
  },
});

export const WebhookAttemptSchema = new EntitySchema<WebhookAttemptRecord>({
  class: WebhookAttemptRecord,
  tableName: 'webhook_attempts',
  indexes: [{ properties: ['deliveryId', 'id'] }, { properties: ['webhookId'] }],
  properties: {
    id: { type: new BigIntType('number'), primary: true, autoincrement: true },
    deliveryId: { type: new BigIntType('number') },
    webhookId: { type: 'string', length: 32 },
    at: { type: 'datetime' },
    statusCode: { type: 'smallint', nullable: true },
    durationMs: { type: 'double' },
    error: { type: 'string', length: 64, nullable: true },
  },
});

export const WebhookCursorSchema = new EntitySchema<WebhookCursorRecord>({
  class: WebhookCursorRecord,
  tableName: 'webhook_cursor',
  properties: {
    id: { type: 'integer', primary: true, autoincrement: false },
    lastAuditId: { type: new BigIntType('number') },
    updatedAt: { type: 'datetime' },
  },
});

export const WEBHOOK_SCHEMAS = [WebhookSchema, WebhookDeliverySchema, WebhookAttemptSchema, WebhookCursorSchema];
