/**
 * KeyAdmin's control plane, independent of gRPC: the authenticator and one module per
 * resource, sharing one AdminContext. Modules take and return domain types (records and
 * plain objects); src/grpc/admin/ maps them to and from the proto messages.
 */
import type { QuotaCounter, RateLimiter } from '../limits/types';
import type { UsageStore } from '../usage/store';
import { Authenticator, type AuthenticatorDeps } from './authenticator';
import { AdminContext, type AdminChange } from './context';
import { Organizations } from './organizations';
import { ApiKeys } from './keys';
import { Limits } from './limits';
import { UsageReports, type UsageReportsDeps } from './usage';
import { AuditLog } from './audit';
import { AdminRequests } from './requests';
import type { SecretBox } from '../keys/secret-box';
import { Webhooks, type WebhooksDeps } from './webhooks';

/** What the authenticator needs (store, hashers, clock, logger, throttle), and what the resources need besides. */
export interface AdminServiceDeps extends AuthenticatorDeps {
  /** RotateKey's default grace period. */
  rotationGraceSeconds: number;
  /** Told after each committed change, so caches can drop what changed at once. */
  onChange?: (change: AdminChange) => void;
  /** The data plane's limiter and quota counter (rate-limit and quota RPCs). */
  limiter: RateLimiter;
  quota: QuotaCounter;
  /** Usage buffering (RecordUsage) and the usage tables (GetUsageStats). */
  usage: UsageReportsDeps['usage'];
  usageStore: UsageStore;
  /** Seals the secrets of remembered retry-safe calls (./requests.ts). */
  secretBox: SecretBox;
  /** Sealing of signing secrets and the target rule (KEYWARD_WEBHOOK_ALLOW_INSECURE). */
  webhooks: WebhooksDeps;
}

export class AdminService {
  /** The admin token's bootstrap and the authentication of every call. */
  readonly authenticator: Authenticator;
  readonly organizations: Organizations;
  readonly keys: ApiKeys;
  /** Rate-limit status and reset, the limiter's counters, quotas. */
  readonly limits: Limits;
  /** RecordUsage and GetUsageStats. */
  readonly usage: UsageReports;
  readonly audit: AuditLog;
  /** Retry-safe calls (request_id): their lookup and their purge after 24 hours. */
  readonly requests: AdminRequests;
  /** An organization's webhook endpoints and their deliveries. */
  readonly webhooks: Webhooks;

  constructor(deps: AdminServiceDeps) {
    this.requests = new AdminRequests(deps);
    const context = new AdminContext({ ...deps, requests: this.requests });
    this.authenticator = new Authenticator(deps);
    this.limits = new Limits(context, deps);
    this.organizations = new Organizations(context, { quotaChanged: (org) => this.limits.countUsedSoFar(org) });
    this.keys = new ApiKeys(context, deps);
    this.usage = new UsageReports(context, deps);
    this.audit = new AuditLog(context);
    this.webhooks = new Webhooks(context, deps.webhooks);
  }
}

export type { AdminChange };
