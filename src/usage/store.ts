/**
 * The usage store: the UsageSink the batcher writes through, the statistics
 * GetUsageStats answers from, and the retention purge of raw events. Cells and events
 * are made storable, capped per organization's distinct endpoints and summed into
 * daily and monthly aggregates here; the SQL is src/store/usage-tables.ts.
 */
import { InvalidArgumentError } from '../errors/domain';
import type { UsageBatch, UsageEvent, UsageReport, UsageSink } from './types';
import { cellsOf, type UsageCell } from './cells';
import { addInto, emptyBuckets } from './histogram';
import { report, type AggregateRow } from './report';
import { endpointCap } from './endpoint-cap';
import { SECURITY_EVENT_KINDS } from '../events/kinds';
import type { SecurityCell } from '../events/security';

export type { AggregateRow } from './report';

/** Column sizes of usage_events / usage_daily / usage_monthly. */
const MAX = { id: 32, requestId: 128, endpoint: 512, method: 16, source: 16 } as const;
const DAY_MS = 86_400_000;
/** Events outside these years are not storable as `YYYY-MM-DD`. */
const MIN_AT = Date.UTC(1970, 0, 1);
const MAX_AT = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const MONTH_PATTERN = /^\d{4}-(0[1-9]|1[0-2])$/;

/**
 * write(batch, batchId?) is ONE transaction of UsageTables.writeBatch: the raw events
 * of the batch (detail records, only those the batcher was asked to keep), and its
 * cells summed per (organization, key, period, endpoint, method), each aggregate row
 * added once per batch to usage_daily and usage_monthly, in primary-key order
 * (concurrent writers lock rows in the same order). Days (`YYYY-MM-DD`) and months
 * (`YYYY-MM`) are UTC, from each cell's hour.
 *
 * Endpoints: an organization counts at most `maxEndpoints` distinct endpoint labels
 * per calendar month (KEYWARD_USAGE_MAX_ENDPOINTS). A cell whose endpoint would be one
 * more is counted under `(other)` instead, in the daily and the monthly rows alike, and
 * its events add to endpointOverflow. The labels an organization already has are read
 * from usage_monthly when a batch brings one this process has not seen; two replicas
 * admitting new labels at the same moment can pass the cap by what they admit then.
 *
 * A cell or event that cannot be stored at all (no finite time, no ids) is skipped
 * rather than failing the batch forever; over-long strings are cut to the column
 * sizes. A database that cannot be reached surfaces as StoreUnavailableError.
 */
export interface UsageStore extends UsageSink {
  /** write() of the events' cells, storing every event raw as well (tests and tools). */
  writeEvents(events: readonly UsageEvent[], batchId?: string): Promise<boolean>;
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
  /** Cells and events write() skipped because they could not be stored (no finite time or ids). */
  readonly skippedEvents: number;
  /** Usage events written under `(other)` because their organization had reached maxEndpoints. */
  readonly endpointOverflow: number;
}

export interface UsageStoreOptions {
  /** Distinct endpoints per organization and calendar month (KEYWARD_USAGE_MAX_ENDPOINTS). Default 1,000. */
  maxEndpoints?: number;
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
    /** Further ids recorded with batchId (batches this one took over). */
    alsoIds?: readonly string[];
    /** Security events, each added to its audit row (one per kind, subject and window). */
    security?: readonly SecurityCell[];
    nowMs: number;
  }): Promise<boolean>;
  /** The distinct endpoints of one organization's month (`YYYY-MM`) in usage_monthly. */
  monthEndpoints(organizationId: string, month: string): Promise<string[]>;
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

/** The storable form of a cell, or undefined if it cannot be stored. */
function normalizeCell(c: UsageCell): UsageCell | undefined {
  if (!c || typeof c.hour !== 'number' || !(c.hour >= MIN_AT && c.hour <= MAX_AT)) return undefined;
  const organizationId = text(c.organizationId, MAX.id);
  const keyId = text(c.keyId, MAX.id);
  if (organizationId === '' || keyId === '' || organizationId.length !== c.organizationId.length || keyId.length !== c.keyId.length)
    return undefined;
  return { ...c, organizationId, keyId, endpoint: text(c.endpoint, MAX.endpoint) || '/', method: text(c.method, MAX.method) || 'UNKNOWN' };
}

const ZERO_BUCKETS: readonly number[] = Object.freeze(emptyBuckets());

/** Sums the cells per (organization, key, day or month, endpoint, method), each list in key order. */
function aggregate(cells: readonly UsageCell[]): { daily: Aggregate[]; monthly: Aggregate[] } {
  const daily = new Map<string, Aggregate>();
  const monthly = new Map<string, Aggregate>();
  const add = (into: Map<string, Aggregate>, period: string, c: UsageCell) => {
    // Strings hold no NUL (normalize), so NUL separates the key parts unambiguously.
    const id = `${c.organizationId}\u0000${c.keyId}\u0000${period}\u0000${c.endpoint}\u0000${c.method}`;
    let a = into.get(id);
    if (!a) {
      a = {
        organizationId: c.organizationId,
        keyId: c.keyId,
        period,
        endpoint: c.endpoint,
        method: c.method,
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
    a.requests += c.requests;
    a.errors4xx += c.errors4xx;
    a.errors5xx += c.errors5xx;
    a.tokens += c.tokens;
    a.costUsd += c.costUsd;
    a.durationCount += c.durationCount;
    a.durationSumMs += c.durationSumMs;
    addInto(a.buckets, c.buckets ?? ZERO_BUCKETS);
  };
  for (const c of cells) {
    const day = dayOf(c.hour);
    add(daily, day, c);
    add(monthly, day.slice(0, 7), c);
  }
  const ordered = (m: Map<string, Aggregate>) =>
    [...m.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)).map(([, a]) => a);
  return { daily: ordered(daily), monthly: ordered(monthly) };
}

const BATCH_ID = /^[A-Za-z0-9_-]{1,32}$/;

const isTime = (ms: unknown) => typeof ms === 'number' && ms >= MIN_AT && ms <= MAX_AT;

/** A security cell the audit table can hold (a journal line is read back as it was written, but checked all the same). */
function storableSecurity(c: SecurityCell): boolean {
  return (
    (SECURITY_EVENT_KINDS as readonly string[]).includes(c.kind) &&
    typeof c.subject === 'string' &&
    c.subject.length > 0 &&
    c.subject.length <= 64 &&
    typeof c.organizationId === 'string' &&
    c.organizationId.length <= MAX.id &&
    (c.keyId === undefined || (typeof c.keyId === 'string' && c.keyId.length <= MAX.id)) &&
    isTime(c.windowStart) &&
    isTime(c.firstSeen) &&
    isTime(c.lastSeen) &&
    Number.isSafeInteger(c.count) &&
    c.count > 0
  );
}

/** 00:00 UTC on the first day of (year, month 0-based; 12 overflows into the next year). */
function utcMonthStart(year: number, month: number): Date {
  const date = new Date(0);
  date.setUTCFullYear(year, month, 1);
  return date;
}

export function createUsageStore(tables: UsageTables, options: UsageStoreOptions = {}): UsageStore {
  let skipped = 0;
  let overflowed = 0;
  const cap = endpointCap(tables, options.maxEndpoints ?? 1000);
  const checkId = (id: string | undefined) => {
    if (id !== undefined && !BATCH_ID.test(id)) throw new RangeError('batch ids must be 1-32 characters [A-Za-z0-9_-]');
  };

  const write = async (batch: UsageBatch, batchId?: string): Promise<boolean> => {
    checkId(batchId);
    for (const id of batch.alsoIds ?? []) checkId(id);
    const rows: EventRow[] = [];
    const cells: UsageCell[] = [];
    let bad = 0;
    // Raw events are summed in the cells as well: only the cells' skips count.
    for (const e of batch.events) {
      const r = normalize(e);
      if (r) rows.push(r);
    }
    for (const c of batch.cells) {
      const n = normalizeCell(c);
      if (n) cells.push(n);
      else bad += c?.events ?? 1;
    }
    const security = (batch.security ?? []).filter(storableSecurity);
    if (rows.length === 0 && cells.length === 0 && security.length === 0 && !batch.alsoIds?.length) {
      skipped += bad;
      return true;
    }
    const overflow = await cap(cells);
    const { daily, monthly } = aggregate(cells);
    const written = await tables.writeBatch({ events: rows, daily, monthly, batchId, alsoIds: batch.alsoIds, security, nowMs: Date.now() });
    if (written) {
      skipped += bad;
      overflowed += overflow;
    }
    return written;
  };

  return {
    get skippedEvents() {
      return skipped;
    },
    get endpointOverflow() {
      return overflowed;
    },

    write,

    writeEvents: (events, batchId) => write({ cells: cellsOf(events), events }, batchId),

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
