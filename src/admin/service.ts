/**
 * KeyAdmin's domain logic, independent of gRPC: organizations, keys, rotation,
 * revocation, the audit log and the authentication of admin callers.
 *
 * Every mutation writes its audit row in the same transaction as the change.
 * Failed authentications and permission denials are audited in a transaction of
 * their own. Denials are thrown as DomainErrors; the gRPC layer maps them.
 */
import type { Logger } from 'pino';
import type { Clock } from '../util/clock';
import { newId } from '../util/ids';
import { describeError } from '../util/logger';
import type { CredentialHasher } from '../keys/hash';
import { displayParts, generateKey, parseKey, type Environment as KeyEnv } from '../keys/format';
import { DomainError, InvalidArgumentError, PermissionDeniedError, TooManyAuthFailuresError, UnauthenticatedError } from '../errors/domain';
import { peerHost, type AuthThrottle } from './auth-throttle';
import type { ErrorCode } from '../errors/codes';
import { AdminTokenRecord, ApiKeyRecord, AuditEventRecord, OrganizationRecord } from '../store/entities';
import type { NewAuditEvent, Repos, Store } from '../store/store';
import * as v from './validate';
import { announcement } from '../store/change-listener';
import { LimiterUnavailableError, type QuotaCounter, type RateLimiter } from '../limits/types';
import { billingPeriod } from '../limits/billing';
import type { UsageEvent } from '../usage/types';
import type { UsageStore } from '../usage/store';
import { monthOf } from '../usage/store';
import { toUsageEvents, usageKeyIds, validateRecordUsage } from '../usage/record-usage';
import { paged } from './paging';
import { auditMessage, keyMessage, organizationMessage } from './mapping';
import { ROOT, orgPrincipal, type CallContext, type Principal } from './principal';
import {
  Environment,
  type ApiKey,
  type CreateKeyRequest,
  type CreateKeyResponse,
  type CreateOrganizationRequest,
  type ListAuditEventsRequest,
  type ListAuditEventsResponse,
  type ListKeysRequest,
  type ListKeysResponse,
  type ListOrganizationsRequest,
  type ListOrganizationsResponse,
  type Organization,
  type RevokeKeyRequest,
  type RotateKeyRequest,
  type RotateKeyResponse,
  type UpdateKeyRequest,
  type UpdateOrganizationRequest,
  type Quota,
  type RateLimiterStats,
  type RateLimitStatus,
  type GetUsageStatsRequest,
  type RecordUsageRequest,
  type RecordUsageResponse,
  type UsageStats,
} from '../gen/keyward/admin/v1/key_admin';

export const ORG_DEFAULTS = { maxKeys: 100, rateLimitPerMinute: 60, monthlyQuota: 0, billingAnchorDay: 1 } as const;
export const ADMIN_SCOPE = 'admin';

export interface AdminServiceDeps {
  store: Store;
  /** Hashes every new key and token, and is tried first when authenticating. */
  hasher: CredentialHasher;
  /**
   * While the hash secret is rotated (KEYWARD_HASH_SECRET_PREVIOUS): a credential not
   * found under `hasher` is tried under this one. A key found that way is reported to
   * onKeyFoundByPrevious (which rewrites its stored hash, batched); an admin token found
   * that way is rewritten here at once.
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
  usage: { record(e: UsageEvent): void; flush(): Promise<void> };
  usageStore: UsageStore;
}

/** A committed change that cached decisions may depend on. */
export type AdminChange = { type: 'key'; id: string; keyHash: string } | { type: 'org'; id: string };

export class AdminService {
  private adminTokenHashes: string[] = [];
  /** An admin token's hash being rewritten with the primary secret (rotation). */
  private rehashing: Promise<void> | undefined;

  constructor(private readonly d: AdminServiceDeps) {}

  private now(): Date {
    return this.d.clock.now();
  }

  // ---------------------------------------------------------------- admin tokens

  /**
   * Makes sure an administrator token exists. With `configured` (KEYWARD_ADMIN_TOKEN),
   * that token becomes the bootstrap token, replacing any earlier bootstrap token.
   * Without it, and with no token stored, a new token is generated and returned so
   * the caller can show it once; it is stored only as its keyed hash.
   */
  async bootstrapAdminToken(configured: string | undefined, generate: () => string): Promise<{ generated?: string }> {
    const result = await this.d.store.transaction(async (r) => {
      const tokens = await r.adminTokens.all();
      const now = this.now();
      if (configured !== undefined) {
        const hash = this.d.hasher.hash(configured);
        const secretId = this.d.hasher.id;
        const current = tokens.find((t) => t.label === 'bootstrap' && t.tokenHash === hash);
        if (current) {
          if (current.hashSecretId !== secretId) current.hashSecretId = secretId;
          return {};
        }
        // The same token under the previous secret: rewrite its hash, keep the token.
        const oldHash = this.d.previousHasher?.hash(configured);
        const old = oldHash === undefined ? undefined : tokens.find((t) => t.label === 'bootstrap' && t.tokenHash === oldHash);
        if (old) {
          Object.assign(old, { tokenHash: hash, hashSecretId: secretId });
          return {};
        }
        for (const t of tokens.filter((t) => t.label === 'bootstrap')) r.adminTokens.remove(t);
        r.adminTokens.add(
          Object.assign(new AdminTokenRecord(), {
            id: newId('adm', now.getTime()),
            tokenHash: hash,
            hashSecretId: secretId,
            label: 'bootstrap',
            createdAt: now,
          }),
        );
        r.audit.append(this.event(ROOT, 'system', 'admin_token.set', {}, 'success', 'from configuration'));
        return {};
      }
      if (tokens.length > 0) return {};
      const token = generate();
      r.adminTokens.add(
        Object.assign(new AdminTokenRecord(), {
          id: newId('adm', now.getTime()),
          tokenHash: this.d.hasher.hash(token),
          hashSecretId: this.d.hasher.id,
          label: 'bootstrap',
          createdAt: now,
        }),
      );
      r.audit.append(this.event(ROOT, 'system', 'admin_token.generate', {}, 'success', null));
      return { generated: token };
    });
    await this.reloadAdminTokens();
    return result;
  }

  private async reloadAdminTokens(): Promise<void> {
    this.adminTokenHashes = (await this.d.store.read((r) => r.adminTokens.all())).map((t) => t.tokenHash);
  }

  // -------------------------------------------------------------- authentication

  /**
   * Authenticates a bearer credential: the administrator token, or an API key with
   * the `admin` scope. Failures are audited and thrown as UnauthenticatedError.
   */
  async authenticate(credential: string | undefined, peer: string): Promise<Principal> {
    const throttle = this.d.authThrottle;
    if (!throttle) return this.authenticateCredential(credential, peer);
    const host = peerHost(peer);
    const now = this.now().getTime();
    const waitMs = throttle.blockedForMs(host, now);
    // A blocked peer's credential is not even looked at (nor audited again).
    if (waitMs > 0) throw new TooManyAuthFailuresError(Math.ceil(waitMs / 1000));
    try {
      const principal = await this.authenticateCredential(credential, peer);
      throttle.success(host);
      return principal;
    } catch (e) {
      if (e instanceof UnauthenticatedError && throttle.failure(host, now)) await this.auditAuthThrottled(peer);
      throw e;
    }
  }

  private async authenticateCredential(credential: string | undefined, peer: string): Promise<Principal> {
    if (credential === undefined || credential === '') {
      await this.auditAuthFailure(peer, 'missing_credentials', {});
      throw new UnauthenticatedError('missing_credentials');
    }
    const parsed = parseKey(credential);
    if (parsed.ok) {
      const now = this.now();
      const key = await this.findKey(credential);
      let why: string | undefined;
      if (!key) why = 'key_not_found';
      else if (key.revokedAt) why = 'key_revoked';
      else if (key.expiresAt && key.expiresAt.getTime() <= now.getTime()) why = 'key_expired';
      else if (!key.scopes.includes(ADMIN_SCOPE)) why = 'missing_admin_scope';
      else {
        const org = await this.d.store.read((r) => r.orgs.get(key.organizationId));
        if (!org || !org.active) why = 'organization_inactive';
      }
      if (why || !key) {
        await this.auditAuthFailure(peer, why ?? 'key_not_found', key ? { organizationId: key.organizationId, keyId: key.id } : {});
        throw new UnauthenticatedError('invalid_credentials');
      }
      return orgPrincipal(key.organizationId, key.id);
    }
    if (this.matchesAdminToken(credential)) return ROOT;
    // Another process may have replaced the bootstrap token; look once more.
    await this.reloadAdminTokens();
    if (this.matchesAdminToken(credential)) return ROOT;
    await this.auditAuthFailure(peer, 'invalid_credentials', {});
    throw new UnauthenticatedError('invalid_credentials');
  }

  /** An API key by its hash under the primary secret, else under the previous one (then reported for rehashing). */
  private async findKey(credential: string): Promise<ApiKeyRecord | null> {
    const hash = this.d.hasher.hash(credential);
    const key = await this.d.store.read((r) => r.keys.findByHash(hash));
    const previous = this.d.previousHasher;
    if (key || !previous) return key;
    const old = await this.d.store.read((r) => r.keys.findByHash(previous.hash(credential)));
    if (old) this.d.onKeyFoundByPrevious?.(old.id, hash, old.keyHash);
    return old;
  }

  private matchesAdminToken(credential: string): boolean {
    let match = false;
    for (const h of this.adminTokenHashes) match = this.d.hasher.matches(credential, h) || match;
    const previous = this.d.previousHasher;
    if (match || !previous) return match;
    for (const h of this.adminTokenHashes) match = previous.matches(credential, h) || match;
    if (match) void this.rehashAdminToken(previous.hash(credential), this.d.hasher.hash(credential));
    return match;
  }

  /** Rewrites an admin token's hash made with the previous secret; on failure the next authentication tries again. */
  private rehashAdminToken(from: string, to: string): Promise<void> {
    if (this.rehashing) return this.rehashing;
    this.rehashing = this.d.store
      .transaction((r) => r.adminTokens.rehash(from, to, this.d.hasher.id))
      .then(
        (n) => {
          this.adminTokenHashes = this.adminTokenHashes.map((h) => (h === from ? to : h));
          if (n > 0)
            this.d.logger.info({ hashSecretId: this.d.hasher.id }, 'hash secret rotation: admin token rehashed with the primary secret');
        },
        (e: unknown) =>
          this.d.logger.warn({ err: describeError(e) }, 'hash secret rotation: rewriting the admin token hash failed; will retry'),
      )
      .finally(() => {
        this.rehashing = undefined;
      });
    return this.rehashing;
  }

  private async auditAuthThrottled(peer: string): Promise<void> {
    this.d.logger.warn({ peer }, 'admin authentication throttled: too many failures from this address');
    await this.d.store.transaction(async (r) => {
      r.audit.append({
        at: this.now(),
        actor: 'anonymous',
        action: 'admin.auth_throttled',
        organizationId: null,
        keyId: null,
        outcome: 'denied',
        reason: 'too_many_auth_failures',
        peer,
      });
    });
  }

  private async auditAuthFailure(peer: string, why: string, target: { organizationId?: string; keyId?: string }): Promise<void> {
    this.d.logger.warn({ peer, reason: why, orgId: target.organizationId, keyId: target.keyId }, 'admin authentication failed');
    await this.d.store.transaction(async (r) => {
      r.audit.append({
        at: this.now(),
        actor: 'anonymous',
        action: 'admin.auth_failed',
        organizationId: target.organizationId ?? null,
        keyId: target.keyId ?? null,
        outcome: 'denied',
        reason: why,
        peer,
      });
    });
  }

  // ------------------------------------------------------------------- helpers

  private event(
    p: Principal,
    peer: string,
    action: string,
    target: { organizationId?: string; keyId?: string },
    outcome: 'success' | 'denied',
    reason: string | null,
  ): NewAuditEvent {
    return {
      at: this.now(),
      actor: p.actor,
      action,
      organizationId: target.organizationId ?? null,
      keyId: target.keyId ?? null,
      outcome,
      reason,
      peer,
    };
  }

  /** Audits a permission denial in its own transaction and returns the error to throw. */
  private async denied(ctx: CallContext, action: string, target: { organizationId?: string; keyId?: string }): Promise<DomainError> {
    await this.d.store.transaction(async (r) => {
      r.audit.append(this.event(ctx.principal, ctx.peer, action, target, 'denied', 'permission_denied'));
    });
    return new PermissionDeniedError();
  }

  private async requireRoot(ctx: CallContext, action: string, target: { organizationId?: string } = {}): Promise<void> {
    if (ctx.principal.kind !== 'root') throw await this.denied(ctx, action, target);
  }

  private async requireOrg(ctx: CallContext, action: string, organizationId: string): Promise<void> {
    if (ctx.principal.kind === 'org' && ctx.principal.organizationId !== organizationId) {
      throw await this.denied(ctx, action, { organizationId });
    }
  }

  /** Loads a key the caller may act on: not_found for root, permission_denied outside an org. */
  private async loadKey(r: Repos, ctx: CallContext, id: string, action: string): Promise<ApiKeyRecord> {
    const key = await r.keys.get(id);
    if (ctx.principal.kind === 'org' && (!key || key.organizationId !== ctx.principal.organizationId)) {
      // The audit row names the key's organization, so its owners see the attempt.
      throw new DeniedSignal(action, { keyId: id, organizationId: key?.organizationId });
    }
    if (!key) throw new DomainError('key_not_found');
    return key;
  }

  private async loadOrg(r: Repos, ctx: CallContext, id: string, action: string, forUpdate = false): Promise<OrganizationRecord> {
    if (ctx.principal.kind === 'org' && ctx.principal.organizationId !== id) throw new DeniedSignal(action, { organizationId: id });
    const org = forUpdate ? await r.orgs.getForUpdate(id) : await r.orgs.get(id);
    if (!org) throw new DomainError('organization_not_found');
    return org;
  }

  /** Runs a transaction; a DeniedSignal raised inside is audited after rollback. */
  private async tx<T>(ctx: CallContext, fn: (r: Repos, changed: (c: AdminChange) => void) => Promise<T>): Promise<T> {
    const changes: AdminChange[] = [];
    try {
      const result = await this.d.store.transaction(async (r) => {
        const out = await fn(r, (c) => changes.push(c));
        // Other processes hear of it when (and only if) this commits.
        if (changes.length) await r.announce(announcement(changes));
        return out;
      });
      // Only after commit: caches drop what changed.
      for (const c of changes) this.d.onChange?.(c);
      return result;
    } catch (e) {
      if (e instanceof DeniedSignal) throw await this.denied(ctx, e.action, e.target);
      throw e;
    }
  }

  // ------------------------------------------------------------- organizations

  async createOrganization(ctx: CallContext, req: CreateOrganizationRequest): Promise<Organization> {
    await this.requireRoot(ctx, 'organization.create');
    const org = new OrganizationRecord();
    org.name = v.name(req.name);
    org.maxKeys = v.intInRange(req.maxKeys ?? ORG_DEFAULTS.maxKeys, 'max_keys', v.LIMITS.maxKeys.min, v.LIMITS.maxKeys.max);
    org.rateLimitPerMinute = v.intInRange(
      req.rateLimitPerMinute ?? ORG_DEFAULTS.rateLimitPerMinute,
      'rate_limit_per_minute',
      0,
      v.LIMITS.rateLimitMax,
    );
    org.monthlyQuota = v.intInRange(req.monthlyQuota ?? ORG_DEFAULTS.monthlyQuota, 'monthly_quota', 0, Number.MAX_SAFE_INTEGER);
    org.billingAnchorDay = v.intInRange(
      req.billingAnchorDay ?? ORG_DEFAULTS.billingAnchorDay,
      'billing_anchor_day',
      v.LIMITS.anchorDay.min,
      v.LIMITS.anchorDay.max,
    );
    const now = this.now();
    org.id = newId('org', now.getTime());
    org.active = true;
    org.createdAt = now;
    org.updatedAt = now;
    await this.tx(ctx, async (r) => {
      r.orgs.add(org);
      r.audit.append(this.event(ctx.principal, ctx.peer, 'organization.create', { organizationId: org.id }, 'success', null));
    });
    return organizationMessage(org);
  }

  async getOrganization(ctx: CallContext, id: string): Promise<Organization> {
    const orgId = v.id(id, 'org', 'id');
    return this.tx(ctx, async (r) => organizationMessage(await this.loadOrg(r, ctx, orgId, 'organization.get')));
  }

  async listOrganizations(ctx: CallContext, req: ListOrganizationsRequest): Promise<ListOrganizationsResponse> {
    const p = ctx.principal;
    const { rows, nextPageToken } = await paged(
      req,
      'string',
      (o: OrganizationRecord) => o.id,
      (after, limit) =>
        this.d.store.read(async (r) => {
          if (p.kind === 'root') return r.orgs.list({ after, limit });
          if (after !== undefined) return [];
          const own = await r.orgs.get(p.organizationId);
          return own ? [own] : [];
        }),
    );
    return { organizations: rows.map(organizationMessage), nextPageToken };
  }

  async updateOrganization(ctx: CallContext, req: UpdateOrganizationRequest): Promise<Organization> {
    const orgId = v.id(req.id, 'org', 'id');
    const limitsChanged = [req.active, req.maxKeys, req.rateLimitPerMinute, req.monthlyQuota, req.billingAnchorDay].some(
      (x) => x !== undefined,
    );
    if (limitsChanged) await this.requireRoot(ctx, 'organization.update', { organizationId: orgId });
    const patch: Partial<OrganizationRecord> = {};
    if (req.name !== undefined) patch.name = v.name(req.name);
    if (req.active !== undefined) patch.active = req.active;
    if (req.maxKeys !== undefined) patch.maxKeys = v.intInRange(req.maxKeys, 'max_keys', v.LIMITS.maxKeys.min, v.LIMITS.maxKeys.max);
    if (req.rateLimitPerMinute !== undefined)
      patch.rateLimitPerMinute = v.intInRange(req.rateLimitPerMinute, 'rate_limit_per_minute', 0, v.LIMITS.rateLimitMax);
    if (req.monthlyQuota !== undefined) patch.monthlyQuota = v.intInRange(req.monthlyQuota, 'monthly_quota', 0, Number.MAX_SAFE_INTEGER);
    if (req.billingAnchorDay !== undefined) {
      patch.billingAnchorDay = v.intInRange(req.billingAnchorDay, 'billing_anchor_day', v.LIMITS.anchorDay.min, v.LIMITS.anchorDay.max);
    }
    return this.tx(ctx, async (r, changed) => {
      const org = await this.loadOrg(r, ctx, orgId, 'organization.update', true);
      changed({ type: 'org', id: org.id });
      const fields = Object.keys(patch).filter(
        (k) => (org as unknown as Record<string, unknown>)[k] !== (patch as Record<string, unknown>)[k],
      );
      Object.assign(org, patch);
      org.updatedAt = this.now();
      r.audit.append(
        this.event(
          ctx.principal,
          ctx.peer,
          'organization.update',
          { organizationId: org.id },
          'success',
          fields.length ? `changed: ${fields.join(',')}` : 'no changes',
        ),
      );
      return organizationMessage(org);
    });
  }

  // ---------------------------------------------------------------------- keys

  private environment(e: Environment): KeyEnv {
    if (e === Environment.ENVIRONMENT_UNSPECIFIED || e === Environment.ENVIRONMENT_LIVE) return 'live';
    if (e === Environment.ENVIRONMENT_TEST) return 'test';
    throw new InvalidArgumentError('environment', 'must be ENVIRONMENT_LIVE or ENVIRONMENT_TEST', 'unknown_value');
  }

  async createKey(ctx: CallContext, req: CreateKeyRequest): Promise<CreateKeyResponse> {
    const orgId = v.id(req.organizationId, 'org', 'organization_id');
    await this.requireOrg(ctx, 'key.create', orgId);
    const now = this.now();
    const environment = this.environment(req.environment);
    const keyName = v.name(req.name);
    const scopes = v.scopes(req.scopes);
    const metadata = v.metadata(req.metadata);
    const rateLimit =
      req.rateLimitPerMinute === undefined ? null : v.intInRange(req.rateLimitPerMinute, 'rate_limit_per_minute', 0, v.LIMITS.rateLimitMax);
    let expiresAt: Date | null = null;
    if (req.expiresInDays !== undefined && req.expiresAt !== undefined) {
      throw new InvalidArgumentError('expiry', 'give expires_in_days or expires_at, not both', 'conflict');
    }
    if (req.expiresInDays !== undefined) {
      expiresAt = new Date(now.getTime() + v.intInRange(req.expiresInDays, 'expires_in_days', 1, v.LIMITS.expiresInDaysMax) * 86_400_000);
    } else if (req.expiresAt !== undefined) {
      expiresAt = v.futureTime(req.expiresAt, now, 'expires_at');
    }

    return this.tx(ctx, async (r, changed) => {
      const org = await this.loadOrg(r, ctx, orgId, 'key.create', true);
      if (!org.active) throw new DomainError('organization_inactive');
      await this.requireKeySlot(r, org, now);
      const { record, secret } = this.newKeyRecord(org.id, environment, now, {
        name: keyName,
        scopes,
        metadata,
        rateLimitPerMinute: rateLimit,
        expiresAt,
      });
      r.keys.add(record);
      changed({ type: 'key', id: record.id, keyHash: record.keyHash });
      r.audit.append(this.event(ctx.principal, ctx.peer, 'key.create', { organizationId: org.id, keyId: record.id }, 'success', null));
      return { key: keyMessage(record, now), secret };
    });
  }

  /** Throws key_limit_exceeded unless the (locked) organization has room for one more usable key. */
  private async requireKeySlot(r: Repos, org: OrganizationRecord, now: Date): Promise<void> {
    const usable = await r.keys.countUsable(org.id, now);
    if (usable >= org.maxKeys) {
      throw new DomainError('key_limit_exceeded', `the organization already has ${usable} of its ${org.maxKeys} keys`, {
        max_keys: String(org.maxKeys),
      });
    }
  }

  private newKeyRecord(
    organizationId: string,
    environment: KeyEnv,
    now: Date,
    settings: Pick<ApiKeyRecord, 'name' | 'scopes' | 'metadata' | 'rateLimitPerMinute' | 'expiresAt'>,
  ): { record: ApiKeyRecord; secret: string } {
    const secret = generateKey(environment);
    const { prefix, hint } = displayParts(secret);
    const record = Object.assign(new ApiKeyRecord(), {
      id: newId('key', now.getTime()),
      organizationId,
      environment,
      prefix,
      hint,
      keyHash: this.d.hasher.hash(secret),
      hashSecretId: this.d.hasher.id,
      createdAt: now,
      updatedAt: now,
      lastUsedAt: null,
      revokedAt: null,
      revokedBy: null,
      revokeReason: null,
      replacedByKeyId: null,
      rotatedFromKeyId: null,
      ...settings,
    });
    return { record, secret };
  }

  async getKey(ctx: CallContext, id: string): Promise<ApiKey> {
    const keyId = v.id(id, 'key', 'id');
    return this.tx(ctx, async (r) => keyMessage(await this.loadKey(r, ctx, keyId, 'key.get'), this.now()));
  }

  async listKeys(ctx: CallContext, req: ListKeysRequest): Promise<ListKeysResponse> {
    const orgId = v.id(req.organizationId, 'org', 'organization_id');
    await this.requireOrg(ctx, 'key.list', orgId);
    const { rows, nextPageToken } = await paged(
      req,
      'string',
      (k: ApiKeyRecord) => k.id,
      (after, limit) =>
        this.d.store.read(async (r) => {
          if (!(await r.orgs.get(orgId))) throw new DomainError('organization_not_found');
          return r.keys.list(orgId, req.includeRevoked, { after, limit });
        }),
    );
    const now = this.now();
    return { keys: rows.map((k) => keyMessage(k, now)), nextPageToken };
  }

  async updateKey(ctx: CallContext, req: UpdateKeyRequest): Promise<ApiKey> {
    const keyId = v.id(req.id, 'key', 'id');
    const now = this.now();
    const patch: Partial<ApiKeyRecord> = {};
    if (req.name !== undefined) patch.name = v.name(req.name);
    if (req.scopes !== undefined) patch.scopes = v.scopes(req.scopes.values, 'scopes.values');
    if (req.expiresAt !== undefined && req.clearExpiresAt)
      throw new InvalidArgumentError('clear_expires_at', 'cannot be combined with expires_at', 'conflict');
    if (req.expiresAt !== undefined) patch.expiresAt = v.futureTime(req.expiresAt, now, 'expires_at');
    if (req.clearExpiresAt) patch.expiresAt = null;
    if (req.rateLimitPerMinute !== undefined && req.clearRateLimitPerMinute) {
      throw new InvalidArgumentError('clear_rate_limit_per_minute', 'cannot be combined with rate_limit_per_minute', 'conflict');
    }
    if (req.rateLimitPerMinute !== undefined)
      patch.rateLimitPerMinute = v.intInRange(req.rateLimitPerMinute, 'rate_limit_per_minute', 0, v.LIMITS.rateLimitMax);
    if (req.clearRateLimitPerMinute) patch.rateLimitPerMinute = null;
    if (req.metadata !== undefined) patch.metadata = v.metadata(req.metadata.entries, 'metadata.entries');

    return this.tx(ctx, async (r, changed) => {
      const key = await this.loadKey(r, ctx, keyId, 'key.update');
      changed({ type: 'key', id: key.id, keyHash: key.keyHash });
      if (key.revokedAt) throw new DomainError('key_revoked');
      const usable = (k: { expiresAt?: Date | null }) => !k.expiresAt || k.expiresAt.getTime() > now.getTime();
      if (!usable(key) && 'expiresAt' in patch && usable(patch)) {
        // Bringing an expired key back must respect the organization's key limit.
        await this.requireKeySlot(r, await this.loadOrg(r, ctx, key.organizationId, 'key.update', true), now);
      }
      Object.assign(key, patch);
      key.updatedAt = now;
      r.audit.append(
        this.event(
          ctx.principal,
          ctx.peer,
          'key.update',
          { organizationId: key.organizationId, keyId: key.id },
          'success',
          `changed: ${Object.keys(patch).join(',') || 'nothing'}`,
        ),
      );
      return keyMessage(key, now);
    });
  }

  async revokeKey(ctx: CallContext, req: RevokeKeyRequest): Promise<ApiKey> {
    const keyId = v.id(req.id, 'key', 'id');
    const why = v.reason(req.reason);
    const now = this.now();
    return this.tx(ctx, async (r, changed) => {
      const key = await this.loadKey(r, ctx, keyId, 'key.revoke');
      changed({ type: 'key', id: key.id, keyHash: key.keyHash });
      if (key.revokedAt) throw new DomainError('key_revoked');
      key.revokedAt = now;
      key.revokedBy = ctx.principal.actor;
      key.revokeReason = why;
      key.updatedAt = now;
      r.audit.append(
        this.event(ctx.principal, ctx.peer, 'key.revoke', { organizationId: key.organizationId, keyId: key.id }, 'success', why),
      );
      return keyMessage(key, now);
    });
  }

  async rotateKey(ctx: CallContext, req: RotateKeyRequest): Promise<RotateKeyResponse> {
    const keyId = v.id(req.id, 'key', 'id');
    const grace = v.intInRange(req.gracePeriodSeconds ?? this.d.rotationGraceSeconds, 'grace_period_seconds', 0, v.LIMITS.graceSecondsMax);
    const now = this.now();
    return this.tx(ctx, async (r, changed) => {
      const old = await this.loadKey(r, ctx, keyId, 'key.rotate');
      changed({ type: 'key', id: old.id, keyHash: old.keyHash });
      if (old.revokedAt) throw new DomainError('key_revoked');
      if (old.expiresAt && old.expiresAt.getTime() <= now.getTime()) throw new DomainError('key_expired');
      if (old.replacedByKeyId) throw new DomainError('key_already_rotated', undefined, { replaced_by_key_id: old.replacedByKeyId });
      const org = await this.loadOrg(r, ctx, old.organizationId, 'key.rotate', true);
      if (!org.active) throw new DomainError('organization_inactive');
      const lifetime = old.expiresAt ? old.expiresAt.getTime() - old.createdAt.getTime() : undefined;
      const { record, secret } = this.newKeyRecord(org.id, old.environment, now, {
        name: old.name,
        scopes: [...old.scopes],
        metadata: { ...old.metadata },
        rateLimitPerMinute: old.rateLimitPerMinute ?? null,
        expiresAt: lifetime !== undefined ? new Date(now.getTime() + lifetime) : null,
      });
      record.rotatedFromKeyId = old.id;
      const graceEnd = new Date(now.getTime() + grace * 1000);
      if (!old.expiresAt || old.expiresAt.getTime() > graceEnd.getTime()) old.expiresAt = graceEnd;
      old.replacedByKeyId = record.id;
      old.updatedAt = now;
      r.keys.add(record);
      changed({ type: 'key', id: record.id, keyHash: record.keyHash });
      const target = { organizationId: org.id, keyId: old.id };
      r.audit.append(this.event(ctx.principal, ctx.peer, 'key.rotate', target, 'success', `new_key=${record.id} grace_seconds=${grace}`));
      r.audit.append(
        this.event(
          ctx.principal,
          ctx.peer,
          'key.create',
          { organizationId: org.id, keyId: record.id },
          'success',
          `rotated_from=${old.id}`,
        ),
      );
      return { newKey: keyMessage(record, now), secret, oldKey: keyMessage(old, now) };
    });
  }

  // --------------------------------------------------------------------- audit

  async listAuditEvents(ctx: CallContext, req: ListAuditEventsRequest): Promise<ListAuditEventsResponse> {
    let organizationId = req.organizationId === '' ? undefined : v.id(req.organizationId, 'org', 'organization_id');
    const keyId = req.keyId === '' ? undefined : v.id(req.keyId, 'key', 'key_id');
    const action = v.filterText(req.action, 'action');
    const startTime = v.filterTime(req.startTime, 'start_time');
    const endTime = v.filterTime(req.endTime, 'end_time');
    if (startTime && endTime && startTime.getTime() >= endTime.getTime()) {
      throw new InvalidArgumentError('end_time', 'must be after start_time', 'invalid_range');
    }
    if (ctx.principal.kind === 'org') {
      if (organizationId !== undefined) await this.requireOrg(ctx, 'audit.list', organizationId);
      organizationId = ctx.principal.organizationId;
    }
    const filter = { organizationId, keyId, action, from: startTime, to: endTime };
    const { rows, nextPageToken } = await paged(
      req,
      'number',
      (e: AuditEventRecord) => Number(e.id),
      (after, limit) => this.d.store.read((r) => r.audit.list(filter, { after, limit })),
    );
    return { events: rows.map(auditMessage), nextPageToken };
  }

  // --------------------------------------------------------------- rate limits

  private async rateStatus(key: ApiKeyRecord, org: OrganizationRecord): Promise<RateLimitStatus> {
    const limit = key.rateLimitPerMinute ?? org.rateLimitPerMinute;
    const limitSource = key.rateLimitPerMinute === null || key.rateLimitPerMinute === undefined ? 'organization' : 'key';
    if (limit === 0) return { keyId: key.id, limit: 0, remaining: 0, resetSeconds: 0, limitSource };
    let d;
    try {
      d = await this.d.limiter.peek(key.id, limit, this.now().getTime());
    } catch (e) {
      if (e instanceof LimiterUnavailableError)
        throw new DomainError('service_unavailable', 'the rate limiter (Redis) is unavailable; retry later');
      throw e;
    }
    return { keyId: key.id, limit, remaining: d.remaining, resetSeconds: d.resetSeconds, limitSource };
  }

  /** A key the caller may act on, with its organization. */
  private async keyAndOrg(
    r: Repos,
    ctx: CallContext,
    keyId: string,
    action: string,
  ): Promise<{ key: ApiKeyRecord; org: OrganizationRecord }> {
    const key = await this.loadKey(r, ctx, keyId, action);
    const org = await r.orgs.get(key.organizationId);
    if (!org) throw new DomainError('organization_not_found');
    return { key, org };
  }

  async getRateLimitStatus(ctx: CallContext, id: string): Promise<RateLimitStatus> {
    const keyId = v.id(id, 'key', 'key_id');
    const { key, org } = await this.tx(ctx, (r) => this.keyAndOrg(r, ctx, keyId, 'key.rate_limit_status'));
    return this.rateStatus(key, org);
  }

  async resetRateLimit(ctx: CallContext, id: string): Promise<RateLimitStatus> {
    const keyId = v.id(id, 'key', 'key_id');
    const { key, org } = await this.tx(ctx, async (r) => {
      const found = await this.keyAndOrg(r, ctx, keyId, 'key.rate_limit_reset');
      r.audit.append(
        this.event(
          ctx.principal,
          ctx.peer,
          'key.rate_limit_reset',
          { organizationId: found.key.organizationId, keyId: found.key.id },
          'success',
          null,
        ),
      );
      return found;
    });
    try {
      await this.d.limiter.reset(key.id);
    } catch (e) {
      if (e instanceof LimiterUnavailableError)
        throw new DomainError('service_unavailable', 'the rate limiter (Redis) is unavailable; retry later');
      throw e;
    }
    return this.rateStatus(key, org);
  }

  async getRateLimiterStats(ctx: CallContext): Promise<RateLimiterStats> {
    await this.requireRoot(ctx, 'rate_limiter.stats');
    const s = this.d.limiter.stats();
    return {
      backend: s.backend,
      trackedKeys: s.trackedKeys,
      allowed: s.allowed,
      limited: s.limited,
      redisErrors: s.redisErrors,
      fallbackDecisions: s.fallbackDecisions,
    };
  }

  // ------------------------------------------------------------------- quotas

  async getQuota(ctx: CallContext, id: string): Promise<Quota> {
    const orgId = v.id(id, 'org', 'organization_id');
    const org = await this.tx(ctx, (r) => this.loadOrg(r, ctx, orgId, 'quota.get'));
    const now = this.now().getTime();
    const limit = Number(org.monthlyQuota);
    const q = { id: org.id, monthlyQuota: limit, billingAnchorDay: org.billingAnchorDay };
    const { used, period } = limit > 0 ? await this.d.quota.used(q, now) : { used: 0, period: billingPeriod(org.billingAnchorDay, now) };
    return {
      organizationId: org.id,
      limit,
      used,
      remaining: limit > 0 ? Math.max(0, limit - used) : 0,
      percentUsed: limit > 0 ? Math.round((used / limit) * 10000) / 100 : 0,
      periodStart: period.start,
      periodEnd: period.end,
    };
  }

  // -------------------------------------------------------------------- usage

  async recordUsage(ctx: CallContext, req: RecordUsageRequest): Promise<RecordUsageResponse> {
    const records = validateRecordUsage(req, this.now().getTime());
    const ids = usageKeyIds(records);
    const keys = await this.d.store.read(async (r) => Promise.all(ids.map((id) => r.keys.get(id))));
    const orgOfKey = new Map<string, string>();
    for (let i = 0; i < ids.length; i++) {
      const k = keys[i];
      const id = ids[i]!;
      const at = records.findIndex((x) => x.keyId === id);
      // An unknown key and another organization's key read the same to a scoped caller.
      if (!k || (ctx.principal.kind === 'org' && k.organizationId !== ctx.principal.organizationId)) {
        throw new InvalidArgumentError(`records[${at}].key_id`, 'is not a key of this organization', 'unknown_key');
      }
      orgOfKey.set(id, k.organizationId);
    }
    for (const e of toUsageEvents(records, orgOfKey)) this.d.usage.record(e);
    return { accepted: records.length };
  }

  async getUsageStats(ctx: CallContext, req: GetUsageStatsRequest): Promise<UsageStats> {
    const orgId = v.id(req.organizationId, 'org', 'organization_id');
    const keyId = req.keyId === '' ? undefined : v.id(req.keyId, 'key', 'key_id');
    const month = req.month === '' ? monthOf(this.now().getTime()) : req.month;
    await this.tx(ctx, (r) => this.loadOrg(r, ctx, orgId, 'usage.get'));
    // Include what this process has buffered; other replicas' usage lags by their flush interval.
    await this.d.usage.flush().catch(() => undefined);
    return this.d.usageStore.stats(orgId, month, keyId);
  }
}

/** Raised inside a transaction to abort it; audited as a denial after rollback. */
class DeniedSignal extends Error {
  constructor(
    readonly action: string,
    readonly target: { organizationId?: string; keyId?: string },
  ) {
    super('permission_denied');
  }
}

export type { ErrorCode };
