/** KeyAdmin's usage: RecordUsage (detail records reported by the application) and GetUsageStats. */
import { InvalidArgumentError } from '../errors/domain';
import type { UsageEvent, UsageRecordInput, UsageReport } from '../usage/types';

export type { UsageRecordInput, UsageReport } from '../usage/types';
import { monthOf, type UsageStore } from '../usage/store';
import { idempotentBatchId, toUsageEvents, usageKeyIds, validateIdempotencyKey, validateRecordUsage } from '../usage/record-usage';
import type { AdminContext } from './context';
import type { CallContext } from './principal';
import * as validate from './validate';
import { billingPeriod } from '../limits/billing';

const MONTH_PATTERN = /^\d{4}-(0[1-9]|1[0-2])$/;

/**
 * GetUsageStats' input: '' for keyId means every key. Without billingPeriod, `month` is
 * a UTC calendar month ('' the current one); with it, the organization's billing period
 * that starts in `month` ('' the period containing now).
 */
export interface UsageQuery {
  organizationId: string;
  keyId: string;
  month: string;
  billingPeriod?: boolean;
}

export interface UsageReportsDeps {
  /**
   * Usage buffering: RecordUsage's events, flushed before GetUsageStats reads; with an
   * idempotency key, written at once as a batch of their own (UsageBatcher.writeBatch).
   */
  usage: { record(event: UsageEvent): void; flush(): Promise<void>; writeBatch(id: string, events: UsageEvent[]): Promise<boolean> };
  usageStore: UsageStore;
}

export class UsageReports {
  constructor(
    private readonly context: AdminContext,
    private readonly deps: UsageReportsDeps,
  ) {}

  /**
   * Buffers the records as usage events; returns how many were accepted (all or none).
   * With an idempotency key, each organization's records are written at once as one
   * batch whose id derives from (organization, key): a batch already written under that
   * id (kept at least 24 hours, see KEYWARD_USAGE_RETENTION_DAYS) is not applied again,
   * and the call is acknowledged all the same.
   */
  async record(caller: CallContext, records: UsageRecordInput[], idempotencyKey = ''): Promise<number> {
    const key = validateIdempotencyKey(idempotencyKey);
    const validated = validateRecordUsage({ records }, this.context.now().getTime());
    const ids = usageKeyIds(validated);
    const keys = await this.context.store.read(async (repos) => Promise.all(ids.map((id) => repos.keys.get(id))));
    const orgOfKey = new Map<string, string>();
    for (let i = 0; i < ids.length; i++) {
      const key = keys[i];
      const id = ids[i]!;
      const at = validated.findIndex((record) => record.keyId === id);
      // An unknown key and another organization's key read the same to a scoped caller.
      if (!key || (caller.principal.kind === 'org' && key.organizationId !== caller.principal.organizationId)) {
        throw new InvalidArgumentError(`records[${at}].key_id`, 'is not a key of this organization', 'unknown_key');
      }
      orgOfKey.set(id, key.organizationId);
    }
    const events = toUsageEvents(validated, orgOfKey);
    if (key === undefined) {
      for (const event of events) this.deps.usage.record(event);
      return validated.length;
    }
    const byOrganization = new Map<string, UsageEvent[]>();
    for (const event of events) {
      const batch = byOrganization.get(event.organizationId);
      if (batch) batch.push(event);
      else byOrganization.set(event.organizationId, [event]);
    }
    for (const [organizationId, batch] of byOrganization) {
      await this.deps.usage.writeBatch(idempotentBatchId(organizationId, key), batch);
    }
    return validated.length;
  }

  async stats(caller: CallContext, query: UsageQuery): Promise<UsageReport> {
    const orgId = validate.id(query.organizationId, 'org', 'organization_id');
    const keyId = query.keyId === '' ? undefined : validate.id(query.keyId, 'key', 'key_id');
    const now = this.context.now().getTime();
    const month = query.month === '' ? monthOf(now) : query.month;
    if (query.billingPeriod && !MONTH_PATTERN.test(month)) throw new InvalidArgumentError('month', 'must be YYYY-MM', 'invalid_month');
    const org = await this.context.tx(caller, (repos) => this.context.loadOrg(repos, caller, orgId, 'usage.get'));
    // Include what this process has buffered; other replicas' usage lags by their flush interval.
    await this.deps.usage.flush().catch(() => undefined);
    if (!query.billingPeriod) return this.deps.usageStore.stats(orgId, month, keyId);
    const [year, monthNumber] = month.split('-').map(Number) as [number, number];
    // The period containing the anchor day of `month` is the one that starts in it.
    const at = query.month === '' ? now : new Date(0).setUTCFullYear(year, monthNumber - 1, org.billingAnchorDay);
    return this.deps.usageStore.periodStats(orgId, billingPeriod(org.billingAnchorDay, at), keyId);
  }
}
