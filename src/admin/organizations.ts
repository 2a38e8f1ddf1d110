/**
 * KeyAdmin's organizations: create, get, list, update, delete. Every change is audited
 * in its own transaction. A deleted organization can still be read (get, list with
 * includeDeleted, and its keys, usage and audit events elsewhere) but not changed:
 * update and delete answer organization_deleted (as CreateKey does, src/admin/keys.ts).
 */
import { DomainError, InvalidArgumentError } from '../errors/domain';
import { newId } from '../util/ids';
import { OrganizationRecord } from '../store/entities';
import type { AdminContext } from './context';
import { paged, type PageOf, type PageRequest } from './paging';
import type { CallContext } from './principal';
import * as validate from './validate';

export const ORG_DEFAULTS = { maxKeys: 100, rateLimitPerMinute: 60, monthlyQuota: 0, billingAnchorDay: 1 } as const;

/** CreateOrganization's input; absent limits take ORG_DEFAULTS. */
export interface NewOrganization {
  name: string;
  maxKeys?: number;
  rateLimitPerMinute?: number;
  monthlyQuota?: number;
  billingAnchorDay?: number;
  /** Quota alert percentages; empty or absent: the default (80, 100). */
  quotaAlertPercents?: number[];
}

/**
 * UpdateOrganization's input: only the fields given change. All but `name` need the administrator token.
 * Giving monthlyQuota or billingAnchorDay (even unchanged) also raises the current period's
 * quota counter to what the usage aggregates hold (Limits.countUsedSoFar).
 */
export interface OrganizationPatch {
  id: string;
  name?: string;
  active?: boolean;
  maxKeys?: number;
  rateLimitPerMinute?: number;
  monthlyQuota?: number;
  billingAnchorDay?: number;
  /** Replaces the quota alert percentages when not empty. */
  quotaAlertPercents?: number[];
}

/** The stored form of quota alert percentages: ascending, distinct, comma-separated; InvalidArgumentError naming the field otherwise. */
function alertPercents(values: number[]): string {
  if (values.length > 10) throw new InvalidArgumentError('quota_alert_percents', 'at most 10 percentages', 'invalid_argument');
  for (const v of values)
    if (!Number.isInteger(v) || v < 1 || v > 1000)
      throw new InvalidArgumentError('quota_alert_percents', 'each must be a whole percentage 1..1000', 'invalid_argument');
  return [...new Set(values)].sort((a, b) => a - b).join(',');
}

/** ListOrganizations' input. */
export interface OrganizationListQuery extends PageRequest {
  /** Also list deleted organizations. */
  includeDeleted?: boolean;
}

/** What DeleteOrganization did. */
export interface DeletedOrganization {
  org: OrganizationRecord;
  /** Keys this call revoked (keys revoked before are left as they were). */
  revokedKeys: number;
}

/** What an update of the quota or the anchor day runs after its commit (Limits.countUsedSoFar). */
export interface OrganizationHooks {
  quotaChanged?(org: OrganizationRecord): Promise<void>;
}

export class Organizations {
  constructor(
    private readonly context: AdminContext,
    private readonly hooks: OrganizationHooks = {},
  ) {}

  /** Administrator token only. */
  async create(caller: CallContext, input: NewOrganization): Promise<OrganizationRecord> {
    const { LIMITS } = validate;
    await this.context.requireRoot(caller, 'organization.create');
    const org = new OrganizationRecord();
    org.name = validate.name(input.name);
    org.maxKeys = validate.intInRange(input.maxKeys ?? ORG_DEFAULTS.maxKeys, 'max_keys', LIMITS.maxKeys.min, LIMITS.maxKeys.max);
    org.rateLimitPerMinute = validate.intInRange(
      input.rateLimitPerMinute ?? ORG_DEFAULTS.rateLimitPerMinute,
      'rate_limit_per_minute',
      0,
      LIMITS.rateLimitMax,
    );
    org.monthlyQuota = validate.intInRange(input.monthlyQuota ?? ORG_DEFAULTS.monthlyQuota, 'monthly_quota', 0, Number.MAX_SAFE_INTEGER);
    org.billingAnchorDay = validate.intInRange(
      input.billingAnchorDay ?? ORG_DEFAULTS.billingAnchorDay,
      'billing_anchor_day',
      LIMITS.anchorDay.min,
      LIMITS.anchorDay.max,
    );
    if (input.quotaAlertPercents?.length) org.quotaAlertPercents = alertPercents(input.quotaAlertPercents);
    const now = this.context.now();
    org.id = newId('org', now.getTime());
    org.active = true;
    org.createdAt = now;
    org.updatedAt = now;
    org.deletedAt = null;
    // The transaction's result is the response's source (a retry-safe call: AdminContext.tx).
    return this.context.tx(caller, (repos) => {
      repos.orgs.add(org);
      repos.audit.append(this.context.event(caller, 'organization.create', { organizationId: org.id }, 'success', null));
      return Promise.resolve(org);
    });
  }

  async get(caller: CallContext, id: string): Promise<OrganizationRecord> {
    const orgId = validate.id(id, 'org', 'id');
    return this.context.tx(caller, (repos) => this.context.loadOrg(repos, caller, orgId, 'organization.get'));
  }

  /** Root: every organization, by id (deleted ones only with includeDeleted). A scoped caller: its own, on one page. */
  async list(caller: CallContext, page: OrganizationListQuery): Promise<PageOf<OrganizationRecord>> {
    const principal = caller.principal;
    const includeDeleted = page.includeDeleted === true;
    return paged(
      page,
      'string',
      (org: OrganizationRecord) => org.id,
      (after, limit) =>
        this.context.store.read(async (repos) => {
          if (principal.kind === 'root') return repos.orgs.list({ after, limit }, includeDeleted);
          if (after !== undefined) return [];
          const own = await repos.orgs.get(principal.organizationId);
          return own && (includeDeleted || !own.deletedAt) ? [own] : [];
        }),
    );
  }

  async update(caller: CallContext, input: OrganizationPatch): Promise<OrganizationRecord> {
    const { LIMITS } = validate;
    const orgId = validate.id(input.id, 'org', 'id');
    const limitsChanged =
      [input.active, input.maxKeys, input.rateLimitPerMinute, input.monthlyQuota, input.billingAnchorDay].some(
        (value) => value !== undefined,
      ) || !!input.quotaAlertPercents?.length;
    if (limitsChanged) await this.context.requireRoot(caller, 'organization.update', { organizationId: orgId });
    const patch: Partial<OrganizationRecord> = {};
    if (input.name !== undefined) patch.name = validate.name(input.name);
    if (input.active !== undefined) patch.active = input.active;
    if (input.maxKeys !== undefined) patch.maxKeys = validate.intInRange(input.maxKeys, 'max_keys', LIMITS.maxKeys.min, LIMITS.maxKeys.max);
    if (input.rateLimitPerMinute !== undefined)
      patch.rateLimitPerMinute = validate.intInRange(input.rateLimitPerMinute, 'rate_limit_per_minute', 0, LIMITS.rateLimitMax);
    if (input.monthlyQuota !== undefined)
      patch.monthlyQuota = validate.intInRange(input.monthlyQuota, 'monthly_quota', 0, Number.MAX_SAFE_INTEGER);
    if (input.quotaAlertPercents?.length) patch.quotaAlertPercents = alertPercents(input.quotaAlertPercents);
    if (input.billingAnchorDay !== undefined) {
      patch.billingAnchorDay = validate.intInRange(
        input.billingAnchorDay,
        'billing_anchor_day',
        LIMITS.anchorDay.min,
        LIMITS.anchorDay.max,
      );
    }
    const updated = await this.context.tx(caller, async (repos, changed) => {
      const org = await this.context.loadOrg(repos, caller, orgId, 'organization.update', true);
      if (org.deletedAt) throw new DomainError('organization_deleted');
      changed({ type: 'org', id: org.id });
      const fields = Object.keys(patch).filter(
        (field) => (org as unknown as Record<string, unknown>)[field] !== (patch as Record<string, unknown>)[field],
      );
      Object.assign(org, patch);
      org.updatedAt = this.context.now();
      repos.audit.append(
        this.context.event(
          caller,
          'organization.update',
          { organizationId: org.id },
          'success',
          fields.length ? `changed: ${fields.join(',')}` : 'no changes',
        ),
      );
      return org;
    });
    // A quota or anchor day given: the (new) period's counter starts from what was already used.
    if (input.monthlyQuota !== undefined || input.billingAnchorDay !== undefined) await this.hooks.quotaChanged?.(updated);
    return updated;
  }

  /**
   * DeleteOrganization. Administrator token only. One transaction, with the organization
   * row locked: every key not yet revoked is revoked with `reason` (each audited as
   * `key.revoke`, as RevokeKey does), the organization gets deletedAt and is made
   * inactive (audited as `organization.delete` with the reason and the count), and the
   * change is announced as an organization change, so every process drops the
   * organization's cached keys (one announcement whatever the number of keys). Usage
   * rows and audit rows are kept. A deleted organization: organization_deleted.
   */
  async delete(caller: CallContext, id: string, reason: string): Promise<DeletedOrganization> {
    const orgId = validate.id(id, 'org', 'organization_id');
    await this.context.requireRoot(caller, 'organization.delete', { organizationId: orgId });
    const why = validate.reason(reason);
    return this.context.tx(caller, async (repos, changed) => {
      const org = await this.context.loadOrg(repos, caller, orgId, 'organization.delete', true);
      if (org.deletedAt) throw new DomainError('organization_deleted');
      const now = this.context.now();
      const keys = await repos.keys.listUnrevoked(org.id);
      for (const key of keys) {
        key.revokedAt = now;
        key.revokedBy = caller.principal.actor;
        key.revokeReason = why;
        key.updatedAt = now;
        repos.audit.append(this.context.event(caller, 'key.revoke', { organizationId: org.id, keyId: key.id }, 'success', why));
      }
      org.deletedAt = now;
      org.active = false;
      org.updatedAt = now;
      changed({ type: 'org', id: org.id });
      repos.audit.append(this.context.event(caller, 'organization.delete', { organizationId: org.id }, 'success', why));
      return { org, revokedKeys: keys.length };
    });
  }
}
