/** KeyAdmin's organizations: create, get, list, update. Every change is audited in its own transaction. */
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
    const now = this.context.now();
    org.id = newId('org', now.getTime());
    org.active = true;
    org.createdAt = now;
    org.updatedAt = now;
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

  /** Root: every organization, by id. A scoped caller: its own, on one page. */
  async list(caller: CallContext, page: PageRequest): Promise<PageOf<OrganizationRecord>> {
    const principal = caller.principal;
    return paged(
      page,
      'string',
      (org: OrganizationRecord) => org.id,
      (after, limit) =>
        this.context.store.read(async (repos) => {
          if (principal.kind === 'root') return repos.orgs.list({ after, limit });
          if (after !== undefined) return [];
          const own = await repos.orgs.get(principal.organizationId);
          return own ? [own] : [];
        }),
    );
  }

  async update(caller: CallContext, input: OrganizationPatch): Promise<OrganizationRecord> {
    const { LIMITS } = validate;
    const orgId = validate.id(input.id, 'org', 'id');
    const limitsChanged = [input.active, input.maxKeys, input.rateLimitPerMinute, input.monthlyQuota, input.billingAnchorDay].some(
      (value) => value !== undefined,
    );
    if (limitsChanged) await this.context.requireRoot(caller, 'organization.update', { organizationId: orgId });
    const patch: Partial<OrganizationRecord> = {};
    if (input.name !== undefined) patch.name = validate.name(input.name);
    if (input.active !== undefined) patch.active = input.active;
    if (input.maxKeys !== undefined) patch.maxKeys = validate.intInRange(input.maxKeys, 'max_keys', LIMITS.maxKeys.min, LIMITS.maxKeys.max);
    if (input.rateLimitPerMinute !== undefined)
      patch.rateLimitPerMinute = validate.intInRange(input.rateLimitPerMinute, 'rate_limit_per_minute', 0, LIMITS.rateLimitMax);
    if (input.monthlyQuota !== undefined)
      patch.monthlyQuota = validate.intInRange(input.monthlyQuota, 'monthly_quota', 0, Number.MAX_SAFE_INTEGER);
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
}
