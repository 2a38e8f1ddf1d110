/**
 * The KeyAdmin gRPC service: authenticates each call, hands it to AdminService and
 * maps any error through toServiceError. Logs method, outcome code and latency,
 * never the credential.
 */
import type { sendUnaryData, ServerUnaryCall, UntypedHandleCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { describeError } from '../util/logger';
import type { AdminService } from '../admin/service';
import type { CallContext } from '../admin/principal';
import { KeyAdminService, type KeyAdminServer } from '../gen/keyward/admin/v1/key_admin';
import { toServiceError, toWireStatus } from '../errors/wire';
import { decoded, safeDefinition } from './decode';
import { checkMetadataSize } from './metadata-limit';

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** The bearer credential of a call, or undefined when missing or malformed. */
export function bearer(call: ServerUnaryCall<unknown, unknown>): string | undefined {
  const values = call.metadata.get('authorization');
  if (values.length !== 1 || typeof values[0] !== 'string') return undefined;
  return BEARER.exec(values[0])?.[1];
}

/** `onCall(method, code)` is told each call's outcome (metrics); code is `ok` or the wire error code. */
export function keyAdminImplementation(
  service: AdminService,
  logger: Logger,
  onCall?: (method: string, code: string) => void,
): KeyAdminServer {
  function unary<Req, Res>(method: string, handler: (ctx: CallContext, req: Req) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      const started = process.hrtime.bigint();
      const peer = call.getPeer();
      const run = async (): Promise<Res> => {
        checkMetadataSize(call.metadata);
        const principal = await service.authenticate(bearer(call as ServerUnaryCall<unknown, unknown>), peer);
        return handler({ principal, peer }, decoded(call.request));
      };
      run().then(
        (res) => {
          logger.info({ method, code: 'ok', ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'admin call');
          onCall?.(method, 'ok');
          callback(null, res);
        },
        (err: unknown) => {
          const code = toWireStatus(err).code;
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          if (code === 'internal') logger.error({ method, code, ms, err: describeError(err) }, 'admin call failed');
          else logger.info({ method, code, ms }, 'admin call');
          onCall?.(method, code);
          callback(toServiceError(err));
        },
      );
    };
  }

  return {
    createOrganization: unary('CreateOrganization', (ctx, req) => service.createOrganization(ctx, req)),
    getOrganization: unary('GetOrganization', (ctx, req) => service.getOrganization(ctx, req.id)),
    listOrganizations: unary('ListOrganizations', (ctx, req) => service.listOrganizations(ctx, req)),
    updateOrganization: unary('UpdateOrganization', (ctx, req) => service.updateOrganization(ctx, req)),
    createKey: unary('CreateKey', (ctx, req) => service.createKey(ctx, req)),
    getKey: unary('GetKey', (ctx, req) => service.getKey(ctx, req.id)),
    listKeys: unary('ListKeys', (ctx, req) => service.listKeys(ctx, req)),
    updateKey: unary('UpdateKey', (ctx, req) => service.updateKey(ctx, req)),
    revokeKey: unary('RevokeKey', (ctx, req) => service.revokeKey(ctx, req)),
    rotateKey: unary('RotateKey', (ctx, req) => service.rotateKey(ctx, req)),
    listAuditEvents: unary('ListAuditEvents', (ctx, req) => service.listAuditEvents(ctx, req)),
    getRateLimitStatus: unary('GetRateLimitStatus', (ctx, req) => service.getRateLimitStatus(ctx, req.keyId)),
    resetRateLimit: unary('ResetRateLimit', (ctx, req) => service.resetRateLimit(ctx, req.keyId)),
    getRateLimiterStats: unary('GetRateLimiterStats', (ctx) => service.getRateLimiterStats(ctx)),
    getQuota: unary('GetQuota', (ctx, req) => service.getQuota(ctx, req.organizationId)),
    recordUsage: unary('RecordUsage', (ctx, req) => service.recordUsage(ctx, req)),
    getUsageStats: unary('GetUsageStats', (ctx, req) => service.getUsageStats(ctx, req)),
  };
}

/** KeyAdmin's service definition, with undecodable requests turned into invalid_argument. */
export const SafeKeyAdminService = safeDefinition(KeyAdminService);
export type { UntypedHandleCall };
