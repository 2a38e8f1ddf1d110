/**
 * Each KeyAdmin RPC as a call of the control plane: the request read into domain input
 * (./mapping), the AdminService module called, its result mapped back to a message.
 */
import type { handleUnaryCall } from '@grpc/grpc-js';
import type { AdminService } from '../../admin/service';
import type { CallContext } from '../../admin/principal';
import {
  CreateKeyResponse,
  CreateWebhookResponse,
  DeleteOrganizationResponse,
  Organization,
  ApiKey,
  RotateKeyResponse,
  type KeyAdminServer,
  type KeyAdminService,
} from '../../gen/keyward/admin/v1/key_admin';
import {
  auditMessage,
  auditQuery,
  keyMessage,
  keyPatch,
  newKey,
  newOrganization,
  organizationMessage,
  organizationPatch,
  quotaMessage,
  rateLimiterStatsMessage,
  rateLimitStatusMessage,
  usageStatsMessage,
} from './mapping';
import { retrySafe } from './retry-safe';
import { deliveryMessage, newWebhook, webhookMessage, webhookPatch } from './webhook-mapping';

/** One handler per RPC, for an authenticated caller and a decoded request. */
export type KeyAdminRpcs = {
  [Method in keyof KeyAdminService]: KeyAdminServer[Method] extends handleUnaryCall<infer Req, infer Res>
    ? (caller: CallContext, req: Req) => Promise<Res>
    : never;
};

export function keyAdminRpcs(admin: AdminService): KeyAdminRpcs {
  const { organizations, keys, limits, usage, audit, webhooks } = admin;
  return {
    createOrganization: retrySafe(
      admin.requests,
      { rpc: 'CreateOrganization', response: Organization },
      (caller, req) => organizations.create(caller, newOrganization(req)),
      organizationMessage,
    ),
    getOrganization: async (caller, req) => organizationMessage(await organizations.get(caller, req.id)),
    listOrganizations: async (caller, req) => {
      const { pageSize, pageToken, includeDeleted } = req;
      const page = await organizations.list(caller, { pageSize, pageToken, includeDeleted });
      return { organizations: page.rows.map(organizationMessage), nextPageToken: page.nextPageToken };
    },
    updateOrganization: async (caller, req) => organizationMessage(await organizations.update(caller, organizationPatch(req))),
    deleteOrganization: retrySafe(
      admin.requests,
      { rpc: 'DeleteOrganization', response: DeleteOrganizationResponse },
      (caller, req) => organizations.delete(caller, req.organizationId, req.reason),
      (deleted) => ({ organization: organizationMessage(deleted.org), revokedKeys: deleted.revokedKeys }),
    ),
    createKey: retrySafe(
      admin.requests,
      { rpc: 'CreateKey', response: CreateKeyResponse, secret: 'secret' },
      (caller, req) => keys.create(caller, newKey(req)),
      (created) => ({ key: keyMessage(created.key), secret: created.secret }),
    ),
    getKey: async (caller, req) => keyMessage(await keys.get(caller, req.id)),
    listKeys: async (caller, req) => {
      const { organizationId, includeRevoked, pageSize, pageToken } = req;
      const page = await keys.list(caller, { organizationId, includeRevoked, pageSize, pageToken });
      return { keys: page.rows.map(keyMessage), nextPageToken: page.nextPageToken };
    },
    updateKey: async (caller, req) => keyMessage(await keys.update(caller, keyPatch(req))),
    revokeKey: retrySafe(
      admin.requests,
      { rpc: 'RevokeKey', response: ApiKey },
      (caller, req) => keys.revoke(caller, req.id, req.reason),
      keyMessage,
    ),
    rotateKey: retrySafe(
      admin.requests,
      { rpc: 'RotateKey', response: RotateKeyResponse, secret: 'secret' },
      (caller, req) => keys.rotate(caller, req.id, req.gracePeriodSeconds),
      (rotated) => ({ newKey: keyMessage(rotated.newKey), secret: rotated.secret, oldKey: keyMessage(rotated.oldKey) }),
    ),
    listAuditEvents: async (caller, req) => {
      const page = await audit.list(caller, auditQuery(req));
      return { events: page.rows.map(auditMessage), nextPageToken: page.nextPageToken };
    },
    getRateLimitStatus: async (caller, req) => rateLimitStatusMessage(await limits.rateLimitStatus(caller, req.keyId)),
    resetRateLimit: async (caller, req) => rateLimitStatusMessage(await limits.resetRateLimit(caller, req.keyId)),
    getRateLimiterStats: async (caller) => rateLimiterStatsMessage(await limits.limiterStats(caller)),
    getQuota: async (caller, req) => quotaMessage(await limits.quota(caller, req.organizationId)),
    recordUsage: async (caller, req) => ({ accepted: await usage.record(caller, req.records, req.idempotencyKey) }),
    getUsageStats: async (caller, req) =>
      usageStatsMessage(
        await usage.stats(caller, {
          organizationId: req.organizationId,
          keyId: req.keyId,
          month: req.month,
          billingPeriod: req.billingPeriod,
        }),
      ),
    createWebhook: retrySafe(
      admin.requests,
      { rpc: 'CreateWebhook', response: CreateWebhookResponse, secret: 'secret' },
      (caller, req) => webhooks.create(caller, newWebhook(req)),
      (created) => ({ webhook: webhookMessage(created.webhook), secret: created.secret }),
    ),
    listWebhooks: async (caller, req) => {
      const { organizationId, pageSize, pageToken } = req;
      const page = await webhooks.list(caller, { organizationId, pageSize, pageToken });
      return { webhooks: page.rows.map(webhookMessage), nextPageToken: page.nextPageToken };
    },
    updateWebhook: async (caller, req) => webhookMessage(await webhooks.update(caller, webhookPatch(req))),
    deleteWebhook: async (caller, req) => {
      await webhooks.delete(caller, req.id);
      return {};
    },
    listWebhookDeliveries: async (caller, req) => {
      const { webhookId, pageSize, pageToken } = req;
      const page = await webhooks.deliveries(caller, { webhookId, pageSize, pageToken });
      return { deliveries: page.rows.map(deliveryMessage), nextPageToken: page.nextPageToken };
    },
  };
}
