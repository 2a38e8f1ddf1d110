/**
 * The usage store: the UsageSink the batcher writes through, the monthly statistics
 * GetUsageStats answers from, and the retention purge of raw events. The rows are
 * made storable and pre-aggregated here; the SQL is src/store/usage-tables.ts.
 */
import { InvalidArgumentError } from '../errors/domain';
import type { UsageEvent, UsageReport, UsageSink, UsageTotals } from './types';
import { addInto, bucketOf, emptyBuckets, p95, parseBuckets } from './histogram';

/** Column sizes of usage_events / usage_daily / usage_monthly. */
const MAX = { id: 32, requestId: 128, endpoint: 512, method: 16, source: 16 } as const;
const DAY_MS = 86_400_000;
/** Events outside these years are not storable as `YYYY-MM-DD`. */
const MIN_AT = Date.UTC(1970, 0, 1);
const MAX_AT = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const MONTH_PATTERN = /^\d{4}-(0[1-9]|1[0-2])$/;

/**
 * write(events, batchId?) is ONE transaction of UsageTables.writeBatch: the raw events,
 * and the batch pre-aggregated in memory per (organization, key, period, endpoint,
 * method), each aggregate row added once per batch to usage_daily and usage_monthly,
 * in primary-key order (concurrent writers lock rows in the same order).
 * Days (`YYYY-MM-DD`) and months (`YYYY-MM`) are UTC, from each event's `at`.
 *
 * Counting: requests from `requests` (1 only for allowed Checks); 4xx/5xx from
 * statusCode; tokens and cost summed where present; duration count, sum and
 * histogram (./histogram) from the events that have durationMs.
 *
 * An event that cannot be stored at all (no finite time, no ids) is skipped rather
 * than failing the batch forever; over-long strings are cut to the column sizes.
 * A database that cannot be reached surfaces as StoreUnavailableError.
 */
export interface UsageStore extends UsageSink {
  /**
   * Usage of one UTC calendar month (`YYYY-MM`) of an organization, optionally of one
   * key: totals and by endpoint (requests, most first) and by key (from usage_monthly),
   * and by day in order (from usage_daily). Throws InvalidArgumentError (field `month`)
   * for a malformed month.
   */
  stats(organizationId: string, month: string, keyId?: string): Promise<UsageReport>;
  /**
   * Usage of a billing period [start, end) of an organization, optionally of one key,
   * summed from usage_daily (the period may span two calendar months): the same
   * breakdowns as stats(). `start` and `end` are UTC midnights; `month` is reported
   * as the month `start` falls in.
   */
  periodStats(organizationId: string, period: { start: Date; end: Date }, keyId?: string): Promise<UsageReport>;
  /** Deletes raw events with `at` before `date` (aggregates are kept); returns how many. */
  purgeEventsBefore(date: Date): Promise<number>;
  /** Events write() skipped because they could not be stored (no finite time or ids). */
  readonly skippedEvents: number;
}

/** `YYYY-MM` (UTC) of an epoch-ms time. */
export function monthOf(atMs: number): string {
  return new Date(atMs).toISOString().slice(0, 7);
}

/** `YYYY-MM-DD` (UTC) of an epoch-ms time. */
export function dayOf(atMs: number): string {
  return new Date(atMs).toISOString().slice(0, 10);
}

/** The cut-off for KEYWARD_USAGE_RETENTION_DAYS: raw events before it may be purged. */
export function retentionCutoff(nowMs: number, retentionDays: number): Date {
  return new Date(nowMs - retentionDays * DAY_MS);
}

/**
 * The usage tables (usage_events, usage_daily, usage_monthly, usage_batches), as the
 * usage store needs them; implemented by src/store/usage-tables.ts. Each method
 * rethrows an unreachable database as StoreUnavailableError.
 */
export interface UsageTables {
  /**
   * In ONE transaction: records `batchId` when given (if it was recorded before,
   * nothing is written and the result is false), inserts the events, and adds the
   * aggregates (in the given order) to usage_daily and usage_monthly. True when written.
   */
  writeBatch(batch: {
    events: readonly EventRow[];
    daily: readonly Aggregate[];
    monthly: readonly Aggregate[];
    batchId?: string;
    nowMs: number;
  }): Promise<boolean>;
  /** usage_monthly rows of one organization's month (`YYYY-MM`), of one key if given. */
  monthRows(organizationId: string, month: string, keyId?: string): Promise<AggregateRow[]>;
  /** usage_daily rows of the days of one organization's month, of one key if given. */
  dayRows(organizationId: string, month: string, keyId?: string): Promise<AggregateRow[]>;
  /** usage_daily rows of one organization's days `fromDay` <= day < `toDay` (`YYYY-MM-DD`), of one key if given. */
  dayRangeRows(organizationId: string, fromDay: string, toDay: string, keyId?: string): Promise<AggregateRow[]>;
  /** Deletes raw events with `at` before `date`, and batch ids recorded before it; returns how many events. */
  purgeBefore(date: Date): Promise<number>;
}

/** An event as stored in usage_events. */
export interface EventRow {
  at: number;
  organizationId: string;
  keyId: string;
  requestId: string | null;
  endpoint: string;
  method: string;
  requests: 0 | 1;
  statusCode: number | null;
  durationMs: number | null;
  tokens: number | null;
  costUsd: number | null;
  source: string;
}

/** One row of usage_daily / usage_monthly: the sums of a batch, or as stored. */
export interface Aggregate {
  organizationId: string;
  keyId: string;
  period: string;
  endpoint: string;
  method: string;
  requests: number;
  errors4xx: number;
  errors5xx: number;
  tokens: number;
  costUsd: number;
  durationCount: number;
  durationSumMs: number;
  buckets: number[];
}

function text(v: unknown, max: number): string {
  if (typeof v !== 'string') return '';
  // PostgreSQL text cannot hold NUL.
  let s = v.includes('\u0000') ? v.replaceAll('\u0000', '') : v;
  if (s.length > max) {
    s = s.slice(0, max);
    // Do not leave half a surrogate pair.
    const last = s.charCodeAt(s.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) s = s.slice(0, -1);
  }
  return s;
}

function nonNegative(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null;
}

/** The storable form of an event, or undefined if it cannot be stored. */
function normalize(e: UsageEvent): EventRow | undefined {
  if (!e || typeof e.at !== 'number' || !(e.at >= MIN_AT && e.at <= MAX_AT)) return undefined;
  const organizationId = text(e.organizationId, MAX.id);
  const keyId = text(e.keyId, MAX.id);
  if (organizationId === '' || keyId === '' || organizationId.length !== e.organizationId.length || keyId.length !== e.keyId.length)
    return undefined;
  const status = e.statusCode;
  const tokens = e.tokens;
  return {
    at: Math.trunc(e.at),
    organizationId,
    keyId,
    requestId: text(e.requestId, MAX.requestId) || null,
    endpoint: text(e.endpoint, MAX.endpoint) || '/',
    method: text(e.method, MAX.method) || 'UNKNOWN',
    requests: e.requests === 1 ? 1 : 0,
    statusCode: typeof status === 'number' && Number.isInteger(status) && status >= 100 && status <= 599 ? status : null,
    durationMs: nonNegative(e.durationMs),
    tokens: typeof tokens === 'number' && Number.isSafeInteger(tokens) && tokens >= 0 ? tokens : null,
    costUsd: nonNegative(e.costUsd),
    source: text(e.source, MAX.source) || 'api',
  };
}

function aggregate(rows: readonly EventRow[]): { daily: Aggregate[]; monthly: Aggregate[] } {
  const daily = new Map<string, Aggregate>();
  const monthly = new Map<string, Aggregate>();
  const add = (into: Map<string, Aggregate>, period: string, r: EventRow) => {
    // Strings hold no NUL (normalize), so NUL separates the key parts unambiguously.
    const id = `${r.organizationId}\u0000${r.keyId}\u0000${period}\u0000${r.endpoint}\u0000${r.method}`;
    let a = into.get(id);
    if (!a) {
      a = {
        organizationId: r.organizationId,
        keyId: r.keyId,
        period,
        endpoint: r.endpoint,
        method: r.method,
        requests: 0,
        errors4xx: 0,
        errors5xx: 0,
        tokens: 0,
        costUsd: 0,
        durationCount: 0,
        durationSumMs: 0,
        buckets: emptyBuckets(),
      };
      into.set(id, a);
    }
    a.requests += r.requests;
    if (r.statusCode !== null && r.statusCode >= 400 && r.statusCode <= 499) a.errors4xx++;
    if (r.statusCode !== null && r.statusCode >= 500 && r.statusCode <= 599) a.errors5xx++;
    if (r.tokens !== null) a.tokens += r.tokens;
    if (r.costUsd !== null) a.costUsd += r.costUsd;
    if (r.durationMs !== null) {
      a.durationCount++;
      a.durationSumMs += r.durationMs;
      a.buckets[bucketOf(r.durationMs)]!++;
    }
  };
  for (const r of rows) {
    const day = dayOf(r.at);
    add(daily, day, r);
    add(monthly, day.slice(0, 7), r);
  }
  const ordered = (m: Map<string, Aggregate>) =>
    [...m.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)).map(([, a]) => a);
  return { daily: ordered(daily), monthly: ordered(monthly) };
}

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

const BATCH_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** 00:00 UTC on the first day of (year, month 0-based; 12 overflows into the next year). */
function utcMonthStart(year: number, month: number): Date {
  const date = new Date(0);
  date.setUTCFullYear(year, month, 1);
  return date;
}

/**
 * Totals, by endpoint and by key from `rows` (month rows, or the day rows of a billing
 * period), by day from `dayRows`.
 */
function report(
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

export function createUsageStore(tables: UsageTables): UsageStore {
  let skipped = 0;
  return {
    get skippedEvents() {
      return skipped;
    },

    async write(events, batchId) {
      if (batchId !== undefined && !BATCH_ID.test(batchId)) throw new RangeError('batchId must be 1-32 characters [A-Za-z0-9_-]');
      const rows: EventRow[] = [];
      let bad = 0;
      for (const e of events) {
        const r = normalize(e);
        if (r) rows.push(r);
        else bad++;
      }
      if (rows.length === 0) {
        skipped += bad;
        return true;
      }
      const { daily, monthly } = aggregate(rows);
      const written = await tables.writeBatch({ events: rows, daily, monthly, batchId, nowMs: Date.now() });
      if (written) skipped += bad;
      return written;
    },

    async stats(organizationId, month, keyId) {
      if (!MONTH_PATTERN.test(month)) throw new InvalidArgumentError('month', 'must be YYYY-MM', 'invalid_month');
      const monthRows = await tables.monthRows(organizationId, month, keyId);
      const dayRows = await tables.dayRows(organizationId, month, keyId);
      const [year, monthNumber] = month.split('-').map(Number) as [number, number];
      const period = { start: utcMonthStart(year, monthNumber - 1), end: utcMonthStart(year, monthNumber) };
      return {
        organizationId,
        month,
        keyId: keyId ?? '',
        billingPeriod: false,
        ...report(monthRows, dayRows),
        periodStart: period.start,
        periodEnd: period.end,
      };
    },

    async periodStats(organizationId, period, keyId) {
      const dayRows = await tables.dayRangeRows(organizationId, dayOf(period.start.getTime()), dayOf(period.end.getTime()), keyId);
      const month = monthOf(period.start.getTime());
      return {
        organizationId,
        month,
        keyId: keyId ?? '',
        billingPeriod: true,
        ...report(dayRows, dayRows),
        periodStart: period.start,
        periodEnd: period.end,
      };
    },

    purgeEventsBefore: (date) => tables.purgeBefore(date),
  };
}
