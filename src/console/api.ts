/**
 * The console's JSON API: each KeyAdmin RPC as `POST /api/rpc/<Method>`, its request
 * and response in proto3 JSON (the generated fromJSON/toJSON). The call goes to the same
 * handlers as the gRPC service (src/grpc/admin/rpcs.ts), so authorization, validation,
 * retry-safety and audit are KeyAdmin's own. A request is read from JSON, then encoded
 * and decoded as protobuf, so that the handler sees exactly what a gRPC call with the
 * same fields would give it (wrongly typed JSON values become the defaults gRPC would).
 */
import type { AdminService } from '../admin/service';
import type { CallContext } from '../admin/principal';
import { InvalidArgumentError } from '../errors/domain';
import * as pb from '../gen/keyward/admin/v1/key_admin';
import { keyAdminRpcs, type KeyAdminRpcs } from '../grpc/admin/rpcs';

type Method = keyof KeyAdminRpcs;

type MessagesOf<M extends Method> = KeyAdminRpcs[M] extends (caller: CallContext, req: infer Req) => Promise<infer Res>
  ? { request: pb.MessageFns<Req>; response: pb.MessageFns<Res> }
  : never;

/** The request and response message of each RPC (checked against KeyAdminRpcs by the compiler). */
const MESSAGES: { [M in Method]: MessagesOf<M> } = {
  createOrganization: { request: pb.CreateOrganizationRequest, response: pb.Organization },
  getOrganization: { request: pb.GetOrganizationRequest, response: pb.Organization },
  listOrganizations: { request: pb.ListOrganizationsRequest, response: pb.ListOrganizationsResponse },
  updateOrganization: { request: pb.UpdateOrganizationRequest, response: pb.Organization },
  deleteOrganization: { request: pb.DeleteOrganizationRequest, response: pb.DeleteOrganizationResponse },
  createKey: { request: pb.CreateKeyRequest, response: pb.CreateKeyResponse },
  getKey: { request: pb.GetKeyRequest, response: pb.ApiKey },
  listKeys: { request: pb.ListKeysRequest, response: pb.ListKeysResponse },
  updateKey: { request: pb.UpdateKeyRequest, response: pb.ApiKey },
  revokeKey: { request: pb.RevokeKeyRequest, response: pb.ApiKey },
  rotateKey: { request: pb.RotateKeyRequest, response: pb.RotateKeyResponse },
  listAuditEvents: { request: pb.ListAuditEventsRequest, response: pb.ListAuditEventsResponse },
  getRateLimitStatus: { request: pb.GetRateLimitStatusRequest, response: pb.RateLimitStatus },
  resetRateLimit: { request: pb.ResetRateLimitRequest, response: pb.RateLimitStatus },
  getRateLimiterStats: { request: pb.GetRateLimiterStatsRequest, response: pb.RateLimiterStats },
  getQuota: { request: pb.GetQuotaRequest, response: pb.Quota },
  recordUsage: { request: pb.RecordUsageRequest, response: pb.RecordUsageResponse },
  getUsageStats: { request: pb.GetUsageStatsRequest, response: pb.UsageStats },
  createWebhook: { request: pb.CreateWebhookRequest, response: pb.CreateWebhookResponse },
  listWebhooks: { request: pb.ListWebhooksRequest, response: pb.ListWebhooksResponse },
  updateWebhook: { request: pb.UpdateWebhookRequest, response: pb.Webhook },
  deleteWebhook: { request: pb.DeleteWebhookRequest, response: pb.DeleteWebhookResponse },
  listWebhookDeliveries: { request: pb.ListWebhookDeliveriesRequest, response: pb.ListWebhookDeliveriesResponse },
};

/** The RPC names as they appear in the service's paths (`CreateOrganization`), to their handler's key. */
const BY_NAME = new Map<string, Method>(
  (Object.keys(pb.KeyAdminService) as Method[]).map((m) => [pb.KeyAdminService[m].path.split('/').pop()!, m]),
);

export interface ConsoleApi {
  /** The RPC's handler key for a path name, or undefined when there is no such RPC. */
  method(name: string): Method | undefined;
  /** Runs one RPC for an authenticated caller; `body` is the parsed JSON request. Throws DomainErrors. */
  call(method: Method, caller: CallContext, body: unknown): Promise<unknown>;
}

export function consoleApi(admin: AdminService): ConsoleApi {
  const rpcs = keyAdminRpcs(admin);
  return {
    method: (name) => BY_NAME.get(name),
    async call(method, caller, body) {
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new InvalidArgumentError('body', 'must be a JSON object (the request message)', 'not_object');
      }
      const { request, response } = MESSAGES[method] as MessagesOf<Method>;
      let req: unknown;
      try {
        req = request.decode(request.encode(request.fromJSON(body)).finish());
      } catch {
        throw new InvalidArgumentError('body', 'is not a valid request message for this method', 'not_message');
      }
      const handler = rpcs[method] as (caller: CallContext, req: unknown) => Promise<unknown>;
      return (response as pb.MessageFns<unknown>).toJSON(await handler(caller, req));
    },
  };
}
