/**
 * The KeyAdmin gRPC service: authenticates each call, reads the request into domain
 * input (./mapping), hands it to AdminService's module, maps the result back to a
 * message and any error through toServiceError. Logs method, outcome code and
 * latency, never the credential.
 */
import type { sendUnaryData, ServerUnaryCall, UntypedHandleCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { describeError } from '../../util/logger';
import type { AdminService } from '../../admin/service';
import type { CallContext } from '../../admin/principal';
import { KeyAdminService, type KeyAdminServer } from '../../gen/keyward/admin/v1/key_admin';
import { toServiceError, toWireError } from '../errors';
import { decoded, safeDefinition } from '../decode';
import { checkMetadataSize } from '../metadata-limit';
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
} from './mapping';

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** The bearer credential of a call, or undefined when missing or malformed. */
export function bearer(call: ServerUnaryCall<unknown, unknown>): string | undefined {
  const values = call.metadata.get('authorization');
  if (values.length !== 1 || typeof values[0] !== 'string') return undefined;
  return BEARER.exec(values[0])?.[1];
}

/** `onCall(method, code)` is told each call's outcome (metrics); code is `ok` or the wire error code. */
export function keyAdminImplementation(
  admin: AdminService,
  logger: Logger,
  onCall?: (method: string, code: string) => void,
): KeyAdminServer {
  function unary<Req, Res>(method: string, handler: (caller: CallContext, req: Req) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      const started = process.hrtime.bigint();
      const peer = call.getPeer();
      const run = async (): Promise<Res> => {
        checkMetadataSize(call.metadata);
        const principal = await admin.authenticator.authenticate(bearer(call), peer);
        return handler({ principal, peer }, decoded(call.request));
      };
      run().then(
        (res) => {
          logger.info({ method, code: 'ok', ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'admin call');
          onCall?.(method, 'ok');
          callback(null, res);
        },
        (err: unknown) => {
          const code = toWireError(err).code;
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          if (code === 'internal') logger.error({ method, code, ms, err: describeError(err) }, 'admin call failed');
          else logger.info({ method, code, ms }, 'admin call');
          onCall?.(method, code);
          callback(toServiceError(err));
        },
      );
    };
  }

  const { organizations, keys, limits, usage, audit } = admin;
  return {
    createOrganization: unary('CreateOrganization', async (caller, req) =>
      organizationMessage(await organizations.create(caller, newOrganization(req))),
    ),
    getOrganization: unary('GetOrganization', async (caller, req) => organizationMessage(await organizations.get(caller, req.id))),
    listOrganizations: unary('ListOrganizations', async (caller, req) => {
      const page = await organizations.list(caller, { pageSize: req.pageSize, pageToken: req.pageToken });
      return { organizations: page.rows.map(organizationMessage), nextPageToken: page.nextPageToken };
    }),
    updateOrganization: unary('UpdateOrganization', async (caller, req) =>
      organizationMessage(await organizations.update(caller, organizationPatch(req))),
    ),
    createKey: unary('CreateKey', async (caller, req) => {
      const created = await keys.create(caller, newKey(req));
      return { key: keyMessage(created.key), secret: created.secret };
    }),
    getKey: unary('GetKey', async (caller, req) => keyMessage(await keys.get(caller, req.id))),
    listKeys: unary('ListKeys', async (caller, req) => {
      const query = {
        organizationId: req.organizationId,
        includeRevoked: req.includeRevoked,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      };
      const page = await keys.list(caller, query);
      return { keys: page.rows.map(keyMessage), nextPageToken: page.nextPageToken };
    }),
    updateKey: unary('UpdateKey', async (caller, req) => keyMessage(await keys.update(caller, keyPatch(req)))),
    revokeKey: unary('RevokeKey', async (caller, req) => keyMessage(await keys.revoke(caller, req.id, req.reason))),
    rotateKey: unary('RotateKey', async (caller, req) => {
      const rotated = await keys.rotate(caller, req.id, req.gracePeriodSeconds);
      return { newKey: keyMessage(rotated.newKey), secret: rotated.secret, oldKey: keyMessage(rotated.oldKey) };
    }),
    listAuditEvents: unary('ListAuditEvents', async (caller, req) => {
      const page = await audit.list(caller, auditQuery(req));
      return { events: page.rows.map(auditMessage), nextPageToken: page.nextPageToken };
    }),
    getRateLimitStatus: unary('GetRateLimitStatus', async (caller, req) =>
      rateLimitStatusMessage(await limits.rateLimitStatus(caller, req.keyId)),
    ),
    resetRateLimit: unary('ResetRateLimit', async (caller, req) => rateLimitStatusMessage(await limits.resetRateLimit(caller, req.keyId))),
    getRateLimiterStats: unary('GetRateLimiterStats', async (caller) => rateLimiterStatsMessage(await limits.limiterStats(caller))),
    getQuota: unary('GetQuota', async (caller, req) => quotaMessage(await limits.quota(caller, req.organizationId))),
    recordUsage: unary('RecordUsage', async (caller, req) => ({ accepted: await usage.record(caller, req.records) })),
    getUsageStats: unary('GetUsageStats', (caller, req) =>
      usage.stats(caller, { organizationId: req.organizationId, keyId: req.keyId, month: req.month }),
    ),
  };
}

/** KeyAdmin's service definition, with undecodable requests turned into invalid_argument. */
export const SafeKeyAdminService = safeDefinition(KeyAdminService);
export type { UntypedHandleCall };
