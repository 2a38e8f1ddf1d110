/**
 * The KeyAdmin gRPC service: authenticates each call, hands it to AdminService (through
 * ./rpcs) and maps any error through toServiceError. Logs method, outcome code and
 * latency, never the credential.
 */
import { status, type sendUnaryData, type ServerUnaryCall, type UntypedHandleCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { describeError } from '../../util/logger';
import type { AdminService } from '../../admin/service';
import type { CallContext } from '../../admin/principal';
import { KeyAdminService, type KeyAdminServer } from '../../gen/keyward/admin/v1/key_admin';
import { toServiceError, toWireStatus } from '../../errors/wire';
import { decoded, safeDefinition } from '../decode';
import { checkMetadataSize } from '../metadata-limit';
import { keyAdminRpcs } from './rpcs';
import { ERROR_TABLE, GrpcCode, isErrorCode } from '../../errors/codes';
import type { Principal } from '../../admin/principal';
import type { Tracing } from '../../observability/tracing';

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** The bearer credential of a call, or undefined when missing or malformed. */
export function bearer(call: ServerUnaryCall<unknown, unknown>): string | undefined {
  const values = call.metadata.get('authorization');
  if (values.length !== 1 || typeof values[0] !== 'string') return undefined;
  return BEARER.exec(values[0])?.[1];
}

/** gRPC statuses that mark a server span as an error (OpenTelemetry's gRPC conventions). */
const SERVER_FAULTS: ReadonlySet<number> = new Set([
  status.UNKNOWN,
  status.DEADLINE_EXCEEDED,
  status.UNIMPLEMENTED,
  status.INTERNAL,
  status.UNAVAILABLE,
  status.DATA_LOSS,
]);

/**
 * A traced call's attributes: its outcome, the caller's kind (`root`, `org`, or
 * `unauthenticated`) and the organization id when known (an org caller's, else the
 * request's `organizationId`). Never the credential.
 */
export function adminSpanAttributes(code: string, principal: Principal | undefined, request: unknown) {
  const grpc: number = code === 'ok' ? GrpcCode.OK : isErrorCode(code) ? ERROR_TABLE[code].grpc : GrpcCode.INTERNAL;
  const asked = principal && (request as { organizationId?: unknown } | undefined)?.organizationId;
  const organizationId = principal?.kind === 'org' ? principal.organizationId : typeof asked === 'string' && asked ? asked : undefined;
  return {
    attributes: {
      'rpc.grpc.status_code': grpc,
      'keyward.code': code,
      'keyward.caller.kind': principal?.kind ?? 'unauthenticated',
      'keyward.organization.id': organizationId,
    },
    fault: SERVER_FAULTS.has(grpc),
  };
}

/**
 * `onCall(method, code)` is told each call's outcome (metrics); code is `ok` or the wire
 * error code. With `tracing`, each call is a span (src/observability/tracing.ts).
 */
export function keyAdminImplementation(
  admin: AdminService,
  logger: Logger,
  onCall?: (method: string, code: string) => void,
  tracing?: Tracing,
): KeyAdminServer {
  function unary<Req, Res>(method: string, handler: (caller: CallContext, req: Req) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      const started = process.hrtime.bigint();
      const span = tracing?.startAdmin(method);
      const peer = call.getPeer();
      let principal: Principal | undefined;
      let request: unknown;
      const run = async (): Promise<Res> => {
        checkMetadataSize(call.metadata);
        principal = await admin.authenticator.authenticate(bearer(call), peer);
        request = decoded(call.request);
        return handler({ principal, peer }, request as Req);
      };
      const traced = (code: string) => {
        if (!span) return;
        const { attributes, fault } = adminSpanAttributes(code, principal, request);
        span.end(attributes, fault);
      };
      run().then(
        (res) => {
          logger.info({ method, code: 'ok', ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'admin call');
          onCall?.(method, 'ok');
          traced('ok');
          callback(null, res);
        },
        (err: unknown) => {
          const code = toWireStatus(err).code;
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          if (code === 'internal') logger.error({ method, code, ms, err: describeError(err) }, 'admin call failed');
          else logger.info({ method, code, ms }, 'admin call');
          onCall?.(method, code);
          traced(code);
          callback(toServiceError(err));
        },
      );
    };
  }

  const rpc = keyAdminRpcs(admin);
  return {
    createOrganization: unary('CreateOrganization', rpc.createOrganization),
    getOrganization: unary('GetOrganization', rpc.getOrganization),
    listOrganizations: unary('ListOrganizations', rpc.listOrganizations),
    updateOrganization: unary('UpdateOrganization', rpc.updateOrganization),
    deleteOrganization: unary('DeleteOrganization', rpc.deleteOrganization),
    createKey: unary('CreateKey', rpc.createKey),
    getKey: unary('GetKey', rpc.getKey),
    listKeys: unary('ListKeys', rpc.listKeys),
    updateKey: unary('UpdateKey', rpc.updateKey),
    revokeKey: unary('RevokeKey', rpc.revokeKey),
    rotateKey: unary('RotateKey', rpc.rotateKey),
    listAuditEvents: unary('ListAuditEvents', rpc.listAuditEvents),
    getRateLimitStatus: unary('GetRateLimitStatus', rpc.getRateLimitStatus),
    resetRateLimit: unary('ResetRateLimit', rpc.resetRateLimit),
    getRateLimiterStats: unary('GetRateLimiterStats', rpc.getRateLimiterStats),
    getQuota: unary('GetQuota', rpc.getQuota),
    recordUsage: unary('RecordUsage', rpc.recordUsage),
    getUsageStats: unary('GetUsageStats', rpc.getUsageStats),
    createWebhook: unary('CreateWebhook', rpc.createWebhook),
    listWebhooks: unary('ListWebhooks', rpc.listWebhooks),
    updateWebhook: unary('UpdateWebhook', rpc.updateWebhook),
    deleteWebhook: unary('DeleteWebhook', rpc.deleteWebhook),
    listWebhookDeliveries: unary('ListWebhookDeliveries', rpc.listWebhookDeliveries),
  };
}

/** KeyAdmin's service definition, with undecodable requests turned into invalid_argument. */
export const SafeKeyAdminService = safeDefinition(KeyAdminService);
export type { UntypedHandleCall };
