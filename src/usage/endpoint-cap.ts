/**
 * The per-organization, per-month cap on distinct endpoint labels of the usage store
 * (KEYWARD_USAGE_MAX_ENDPOINTS); see UsageStore in ./store.ts for the contract.
 */
import { OTHER_ENDPOINT } from './endpoint';
import type { UsageCell } from './cells';
import { monthOf, type UsageTables } from './store';

/** Known endpoint labels per (organization, month) held at most; beyond, the memo starts over. */
const MAX_MEMO = 10_000;

/**
 * The per-organization, per-month cap on distinct endpoints: relabels (in place) the
 * cells whose endpoint would pass it, and returns how many events it relabelled.
 */
export function endpointCap(tables: UsageTables, maxEndpoints: number) {
  /** `org NUL month` → its endpoints, and whether the cap is reached. */
  const known = new Map<string, { endpoints: Set<string>; full: boolean }>();
  return async (cells: UsageCell[]): Promise<number> => {
    const fresh = new Map<string, { organizationId: string; month: string }>();
    for (const c of cells) {
      if (c.endpoint === OTHER_ENDPOINT) continue;
      const month = monthOf(c.hour);
      const id = `${c.organizationId}\u0000${month}`;
      const entry = known.get(id);
      if (!entry || (!entry.full && !entry.endpoints.has(c.endpoint))) fresh.set(id, { organizationId: c.organizationId, month });
    }
    if (known.size + fresh.size > MAX_MEMO) known.clear();
    for (const [id, { organizationId, month }] of fresh) {
      const stored = await tables.monthEndpoints(organizationId, month);
      const endpoints = new Set(stored.filter((e) => e !== OTHER_ENDPOINT));
      known.set(id, { endpoints, full: endpoints.size >= maxEndpoints });
    }
    let overflow = 0;
    for (const c of cells) {
      if (c.endpoint === OTHER_ENDPOINT) continue;
      const entry = known.get(`${c.organizationId}\u0000${monthOf(c.hour)}`);
      if (!entry || entry.endpoints.has(c.endpoint)) continue;
      if (!entry.full && entry.endpoints.size < maxEndpoints) {
        entry.endpoints.add(c.endpoint);
        entry.full = entry.endpoints.size >= maxEndpoints;
        continue;
      }
      c.endpoint = OTHER_ENDPOINT;
      overflow += c.events;
    }
    return overflow;
  };
}
