/**
 * KeyAdmin's API keys: create, get, list, update, revoke, rotate. A key's secret is
 * returned once, at creation; only its keyed hash is stored.
 */
import type { CredentialHasher } from '../keys/hash';
import { displayParts, generateKey, type Environment } from '../keys/format';
import { newId } from '../util/ids';
import { DomainError, InvalidArgumentError } from '../errors/domain';
import { ApiKeyRecord, type OrganizationRecord } from '../store/entities';
import type { Repos } from '../store/store';
import type { AdminContext } from './context';
import { paged, type PageOf, type PageRequest } from './paging';
import type { CallContext } from './principal';
import * as validate from './validate';

/** A key's state as KeyAdmin reports it (the organization is not considered). */
export type KeyStatus = 'active' | 'revoked' | 'expired' | 'disabled';

/** A key with its status at the time of the call. */
export interface KeyWithStatus {
  key: ApiKeyRecord;
  status: KeyStatus;
}

/** A new key with its secret, shown once. */
export interface CreatedKey {
  key: KeyWithStatus;
  secret: string;
}

/** CreateKey's input. `environment` as read from the request (see validate.environment). */
export interface NewKey {
  organizationId: string;
  name: string;
  environment: string | undefined;
  scopes: string[];
  metadata: Record<string, string>;
  expiresInDays?: number;
  expiresAt?: Date;
  rateLimitPerMinute?: number;
}

/** UpdateKey's input: only the fields given change; a clear* flag sets the field back to none. */
export interface KeyPatch {
  id: string;
  name?: string;
  scopes?: string[];
  expiresAt?: Date;
  clearExpiresAt: boolean;
  rateLimitPerMinute?: number;
  clearRateLimitPerMinute: boolean;
  metadata?: Record<string, string>;
  /** false: disable (key.disable); true: enable (key.enable); a no-op when already so. */
  enabled?: boolean;
}

export interface KeyListQuery extends PageRequest {
  organizationId: string;
  includeRevoked: boolean;
}

export interface RotatedKey {
  newKey: KeyWithStatus;
  secret: string;
  oldKey: KeyWithStatus;
}

export interface ApiKeysDeps {
  /** Hashes every new key. */
  hasher: CredentialHasher;
  /** RotateKey's default grace period. */
  rotationGraceSeconds: number;
}

export function keyStatus(key: ApiKeyRecord, now: Date): KeyStatus {
  if (key.revokedAt) return 'revoked';
  if (key.expiresAt && key.expiresAt.getTime() <= now.getTime()) return 'expired';
  if (key.disabledAt) return 'disabled';
  return 'active';
}

function view(key: ApiKeyRecord, now: Date): KeyWithStatus {
  return { key, status: keyStatus(key, now) };
}

export class ApiKeys {
  constructor(
    private readonly context: AdminContext,
    private readonly deps: ApiKeysDeps,
  ) {}

  async create(caller: CallContext, input: NewKey): Promise<CreatedKey> {
    const { LIMITS } = validate;
    const orgId = validate.id(input.organizationId, 'org', 'organization_id');
    await this.context.requireOrg(caller, 'key.create', orgId);
    const now = this.context.now();
    const environment = validate.environment(input.environment);
    const keyName = validate.name(input.name);
    const scopes = validate.scopes(input.scopes);
    const metadata = validate.metadata(input.metadata);
    const rateLimit =
      input.rateLimitPerMinute === undefined
        ? null
        : validate.intInRange(input.rateLimitPerMinute, 'rate_limit_per_minute', 0, LIMITS.rateLimitMax);
    let expiresAt: Date | null = null;
    if (input.expiresInDays !== undefined && input.expiresAt !== undefined) {
      throw new InvalidArgumentError('expiry', 'give expires_in_days or expires_at, not both', 'conflict');
    }
    if (input.expiresInDays !== undefined) {
      const days = validate.intInRange(input.expiresInDays, 'expires_in_days', 1, LIMITS.expiresInDaysMax);
      expiresAt = new Date(now.getTime() + days * 86_400_000);
    } else if (input.expiresAt !== undefined) {
      expiresAt = validate.futureTime(input.expiresAt, now, 'expires_at');
    }

    return this.context.tx(caller, async (repos, changed) => {
      const org = await this.context.loadOrg(repos, caller, orgId, 'key.create', true);
      if (org.deletedAt) throw new DomainError('organization_deleted');
      if (!org.active) throw new DomainError('organization_inactive');
      await requireKeySlot(repos, org, now);
      const { record, secret } = this.newKeyRecord(org.id, environment, now, {
        name: keyName,
        scopes,
        metadata,
        rateLimitPerMinute: rateLimit,
        expiresAt,
      });
      repos.keys.add(record);
      changed({ type: 'key', id: record.id, keyHash: record.keyHash });
      repos.audit.append(this.context.event(caller, 'key.create', { organizationId: org.id, keyId: record.id }, 'success', null));
      return { key: view(record, now), secret };
    });
  }

  async get(caller: CallContext, id: string): Promise<KeyWithStatus> {
    const keyId = validate.id(id, 'key', 'id');
    const key = await this.context.tx(caller, (repos) => this.context.loadKey(repos, caller, keyId, 'key.get'));
    return view(key, this.context.now());
  }

  /** An organization's keys by id; revoked ones only with includeRevoked. */
  async list(caller: CallContext, query: KeyListQuery): Promise<PageOf<KeyWithStatus>> {
    const orgId = validate.id(query.organizationId, 'org', 'organization_id');
    await this.context.requireOrg(caller, 'key.list', orgId);
    const { rows, nextPageToken } = await paged(
      query,
      'string',
      (key: ApiKeyRecord) => key.id,
      (after, limit) =>
        this.context.store.read(async (repos) => {
          if (!(await repos.orgs.get(orgId))) throw new DomainError('organization_not_found');
          return repos.keys.list(orgId, query.includeRevoked, { after, limit });
        }),
    );
    const now = this.context.now();
    return { rows: rows.map((key) => view(key, now)), nextPageToken };
  }

  async update(caller: CallContext, input: KeyPatch): Promise<KeyWithStatus> {
    const { LIMITS } = validate;
    const keyId = validate.id(input.id, 'key', 'id');
    const now = this.context.now();
    const patch: Partial<ApiKeyRecord> = {};
    if (input.name !== undefined) patch.name = validate.name(input.name);
    if (input.scopes !== undefined) patch.scopes = validate.scopes(input.scopes, 'scopes.values');
    if (input.expiresAt !== undefined && input.clearExpiresAt)
      throw new InvalidArgumentError('clear_expires_at', 'cannot be combined with expires_at', 'conflict');
    if (input.expiresAt !== undefined) patch.expiresAt = validate.futureTime(input.expiresAt, now, 'expires_at');
    if (input.clearExpiresAt) patch.expiresAt = null;
    if (input.rateLimitPerMinute !== undefined && input.clearRateLimitPerMinute) {
      throw new InvalidArgumentError('clear_rate_limit_per_minute', 'cannot be combined with rate_limit_per_minute', 'conflict');
    }
    if (input.rateLimitPerMinute !== undefined)
      patch.rateLimitPerMinute = validate.intInRange(input.rateLimitPerMinute, 'rate_limit_per_minute', 0, LIMITS.rateLimitMax);
    if (input.clearRateLimitPerMinute) patch.rateLimitPerMinute = null;
    if (input.metadata !== undefined) patch.metadata = validate.metadata(input.metadata, 'metadata.entries');

    return this.context.tx(caller, async (repos, changed) => {
      const key = await this.context.loadKey(repos, caller, keyId, 'key.update');
      changed({ type: 'key', id: key.id, keyHash: key.keyHash });
      if (key.revokedAt) throw new DomainError('key_revoked');
      const unexpired = (fields: { expiresAt?: Date | null }) => !fields.expiresAt || fields.expiresAt.getTime() > now.getTime();
      if (!unexpired(key) && 'expiresAt' in patch && unexpired(patch)) {
        // Bringing an expired key back must respect the organization's key limit.
        await requireKeySlot(repos, await this.context.loadOrg(repos, caller, key.organizationId, 'key.update', true), now);
      }
      // Disabling or enabling is its own audited action (and lifecycle event); it changes
      // nothing when the key is already in that state.
      const toggle = input.enabled === undefined || input.enabled === !key.disabledAt ? undefined : input.enabled ? 'enable' : 'disable';
      if (toggle) key.disabledAt = toggle === 'disable' ? now : null;
      Object.assign(key, patch);
      key.updatedAt = now;
      const target = { organizationId: key.organizationId, keyId: key.id };
      if (toggle) repos.audit.append(this.context.event(caller, `key.${toggle}`, target, 'success', null));
      if (Object.keys(patch).length > 0 || !toggle) {
        const changedFields = `changed: ${Object.keys(patch).join(',') || 'nothing'}`;
        repos.audit.append(this.context.event(caller, 'key.update', target, 'success', changedFields));
      }
      return view(key, now);
    });
  }

  async revoke(caller: CallContext, id: string, reason: string): Promise<KeyWithStatus> {
    const keyId = validate.id(id, 'key', 'id');
    const why = validate.reason(reason);
    const now = this.context.now();
    return this.context.tx(caller, async (repos, changed) => {
      const key = await this.context.loadKey(repos, caller, keyId, 'key.revoke');
      changed({ type: 'key', id: key.id, keyHash: key.keyHash });
      if (key.revokedAt) throw new DomainError('key_revoked');
      key.revokedAt = now;
      key.revokedBy = caller.principal.actor;
      key.revokeReason = why;
      key.updatedAt = now;
      repos.audit.append(this.context.event(caller, 'key.revoke', { organizationId: key.organizationId, keyId: key.id }, 'success', why));
      return view(key, now);
    });
  }

  /**
   * Replaces a key by a new one with the same settings (and the same lifetime, from
   * now). The old key stays usable for the grace period (default rotationGraceSeconds).
   */
  async rotate(caller: CallContext, id: string, gracePeriodSeconds: number | undefined): Promise<RotatedKey> {
    const keyId = validate.id(id, 'key', 'id');
    const grace = validate.intInRange(
      gracePeriodSeconds ?? this.deps.rotationGraceSeconds,
      'grace_period_seconds',
      0,
      validate.LIMITS.graceSecondsMax,
    );
    const now = this.context.now();
    return this.context.tx(caller, async (repos, changed) => {
      const old = await this.context.loadKey(repos, caller, keyId, 'key.rotate');
      changed({ type: 'key', id: old.id, keyHash: old.keyHash });
      if (old.revokedAt) throw new DomainError('key_revoked');
      if (old.expiresAt && old.expiresAt.getTime() <= now.getTime()) throw new DomainError('key_expired');
      if (old.replacedByKeyId) throw new DomainError('key_already_rotated', undefined, { replaced_by_key_id: old.replacedByKeyId });
      const org = await this.context.loadOrg(repos, caller, old.organizationId, 'key.rotate', true);
      if (org.deletedAt) throw new DomainError('organization_deleted'); // deleted while this read the key
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
      repos.keys.add(record);
      changed({ type: 'key', id: record.id, keyHash: record.keyHash });
      const oldTarget = { organizationId: org.id, keyId: old.id };
      const newTarget = { organizationId: org.id, keyId: record.id };
      repos.audit.append(this.context.event(caller, 'key.rotate', oldTarget, 'success', `new_key=${record.id} grace_seconds=${grace}`));
      repos.audit.append(this.context.event(caller, 'key.create', newTarget, 'success', `rotated_from=${old.id}`));
      return { newKey: view(record, now), secret, oldKey: view(old, now) };
    });
  }

  private newKeyRecord(
    organizationId: string,
    environment: Environment,
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
      keyHash: this.deps.hasher.hash(secret),
      hashSecretId: this.deps.hasher.id,
      createdAt: now,
      updatedAt: now,
      lastUsedAt: null,
      revokedAt: null,
      revokedBy: null,
      revokeReason: null,
      disabledAt: null,
      replacedByKeyId: null,
      rotatedFromKeyId: null,
      ...settings,
    });
    return { record, secret };
  }
}

/** Throws key_limit_exceeded unless the (locked) organization has room for one more usable key. */
async function requireKeySlot(repos: Repos, org: OrganizationRecord, now: Date): Promise<void> {
  const usable = await repos.keys.countUsable(org.id, now);
  if (usable >= org.maxKeys) {
    throw new DomainError('key_limit_exceeded', `the organization already has ${usable} of its ${org.maxKeys} keys`, {
      max_keys: String(org.maxKeys),
    });
  }
}
