/**
 * KeyAdmin's control plane, independent of gRPC: the authenticator and one module per
 * resource, sharing one AdminContext. Modules take and return domain types (records and
 * plain objects); src/grpc/admin/ maps them to and from the proto messages.
 */
import type { Logger } from 'pino';
import type { Clock } from '../util/clock';
import type { CredentialHasher } from '../keys/hash';
import type { QuotaCounter, RateLimiter } from '../limits/types';
import type { UsageStore } from '../usage/store';
import type { Store } from '../store/store';
import type { AuthThrottle } from './auth-throttle';
import { Authenticator } from './authenticator';
import { AdminContext, type AdminChange } from './context';
import { Organizations } from './organizations';
import { ApiKeys } from './keys';
import { Limits } from './limits';
import { UsageReports, type UsageReportsDeps } from './usage';
import { AuditLog } from './audit';

export interface AdminServiceDeps {
  store: Store;
  /** Hashes every new key and token, and is tried first when authenticating. */
  hasher: CredentialHasher;
  /**
   * While the hash secret is rotated (KEYWARD_HASH_SECRET_PREVIOUS): a credential not
   * found under `hasher` is tried under this one. A key found that way is reported to
   * onKeyFoundByPrevious (which rewrites its stored hash, batched); an admin token found
   * that way is rewritten at once.
   */
  previousHasher?: CredentialHasher;
  onKeyFoundByPrevious?: (keyId: string, primaryHash: string, previousHash: string) => void;
  clock: Clock;
  logger: Logger;
  /** RotateKey's default grace period. */
  rotationGraceSeconds: number;
  /** Brute-force throttling of failed authentications per peer host (none if absent). */
  authThrottle?: AuthThrottle;
  /** Told after each committed change, so caches can drop what changed at once. */
  onChange?: (change: AdminChange) => void;
  /** The data plane's limiter and quota counter (rate-limit and quota RPCs). */
  limiter: RateLimiter;
  quota: QuotaCounter;
  /** Usage buffering (RecordUsage) and the usage tables (GetUsageStats). */
  usage: UsageReportsDeps['usage'];
  usageStore: UsageStore;
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

  constructor(deps: AdminServiceDeps) {
    const context = new AdminContext(deps);
    this.authenticator = new Authenticator(deps);
    this.organizations = new Organizations(context);
    this.keys = new ApiKeys(context, deps);
    this.limits = new Limits(context, deps);
    this.usage = new UsageReports(context, deps);
    this.audit = new AuditLog(context);
  }
}

export type { AdminChange };
