/**
 * GetUsageStats' reports: sums of stored aggregate rows (usage_daily / usage_monthly)
 * turned into totals and breakdowns by endpoint, key and day.
 */
import type { UsageReport, UsageTotals } from './types';
import { addInto, emptyBuckets, p95, parseBuckets } from './histogram';

/** Sums of aggregate rows, turned into UsageTotals. */
class Totals {
  requests = 0;
  errors4xx = 0;
  errors5xx = 0;
  tokens = 0;
  costUsd = 0;
  durationCount = 0;
  durationSumMs = 0;
  buckets = emptyBuckets();

  add(r: AggregateRow): this {
    this.requests += Number(r.requests);
    this.errors4xx += Number(r.errors4xx);
    this.errors5xx += Number(r.errors5xx);
    this.tokens += Number(r.tokens);
    this.costUsd += Number(r.cost_usd);
    const count = Number(r.duration_count);
    if (count > 0) {
      this.durationCount += count;
      this.durationSumMs += Number(r.duration_sum_ms);
      addInto(this.buckets, parseBuckets(r.duration_buckets));
    }
    return this;
  }

  message(): UsageTotals {
    // int64 on the wire, but clients in JavaScript read them as numbers: a sum past
    // 2^53 - 1 (only reachable by months of maximal RecordUsage reports) is capped there.
    const safe = (n: number) => Math.min(n, Number.MAX_SAFE_INTEGER);
    const t: UsageTotals = {
      requests: safe(this.requests),
      errors4xx: safe(this.errors4xx),
      errors5xx: safe(this.errors5xx),
      tokens: safe(this.tokens),
      // Float sums carry noise like 0.30000000000000004; nano-dollars are plenty.
      costUsd: Number(this.costUsd.toFixed(9)),
    };
    if (this.durationCount > 0) {
      t.avgDurationMs = this.durationSumMs / this.durationCount;
      t.p95DurationMs = p95(this.buckets);
    }
    return t;
  }
}

/** A usage_daily / usage_monthly row as read (PostgreSQL returns bigint sums as strings). */
export interface AggregateRow {
  key_id: string;
  period: string;
  endpoint: string;
  method: string;
  requests: number | string;
  errors4xx: number | string;
  errors5xx: number | string;
  tokens: number | string;
  cost_usd: number | string;
  duration_count: number | string;
  duration_sum_ms: number | string;
  duration_buckets: unknown;
}

/**
 * Totals, by endpoint and by key from `rows` (month rows, or the day rows of a billing
 * period), by day from `dayRows`.
 */
export function report(
  rows: readonly AggregateRow[],
  dayRows: readonly AggregateRow[],
): Pick<UsageReport, 'totals' | 'byEndpoint' | 'byKey' | 'byDay'> {
  const totals = new Totals();
  const endpoints = new Map<string, { endpoint: string; method: string; t: Totals }>();
  const keys = new Map<string, Totals>();
  for (const r of rows) {
    totals.add(r);
    const eid = `${r.endpoint}\u0000${r.method}`;
    let ep = endpoints.get(eid);
    if (!ep) endpoints.set(eid, (ep = { endpoint: r.endpoint, method: r.method, t: new Totals() }));
    ep.t.add(r);
    let k = keys.get(r.key_id);
    if (!k) keys.set(r.key_id, (k = new Totals()));
    k.add(r);
  }
  const days = new Map<string, Totals>();
  for (const r of dayRows) {
    let d = days.get(r.period);
    if (!d) days.set(r.period, (d = new Totals()));
    d.add(r);
  }

  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const byEndpoint: UsageReport['byEndpoint'] = [...endpoints.values()]
    .sort((a, b) => b.t.requests - a.t.requests || cmp(a.endpoint, b.endpoint) || cmp(a.method, b.method))
    .map((e) => ({ endpoint: e.endpoint, method: e.method, totals: e.t.message() }));
  const byKey: UsageReport['byKey'] = [...keys.entries()]
    .sort((a, b) => b[1].requests - a[1].requests || cmp(a[0], b[0]))
    .map(([id, t]) => ({ keyId: id, totals: t.message() }));
  const byDay: UsageReport['byDay'] = [...days.entries()].sort((a, b) => cmp(a[0], b[0])).map(([day, t]) => ({ day, totals: t.message() }));
  return { totals: totals.message(), byEndpoint, byKey, byDay };
}
