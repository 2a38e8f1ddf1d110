/**
 * The usage store: the UsageSink the batcher writes through, the monthly statistics
 * GetUsageStats answers from, and the retention purge of raw events.
 *
 * write(events) is ONE transaction:
 *  1. the raw events go into usage_events with chunked multi-row inserts;
 *  2. the batch is pre-aggregated in memory per (organization, key, period, endpoint,
 *     method), so each aggregate row is written once per batch, and upserted into
 *     usage_daily and usage_monthly with INSERT ... ON CONFLICT (pk) DO UPDATE that adds
 *     the batch's numbers to the stored ones. The latency histogram (a fixed-length
 *     JSON array, see ./histogram) is merged in the same statement, element by element,
 *     so the whole upsert is atomic and needs no read-modify-write or row lock of its
 *     own. Rows are upserted in primary-key order, so concurrent writers (several
 *     replicas) lock rows in the same order and do not deadlock.
 * Days (`YYYY-MM-DD`) and months (`YYYY-MM`) are UTC, from each event's `at`.
 *
 * Counting: requests from `requests` (1 only for allowed Checks); 4xx/5xx from
 * statusCode; tokens and cost summed where present; duration count, sum and
 * histogram from the events that have durationMs.
 *
 * An event that cannot be stored at all (no finite time, no ids) is skipped rather
 * than failing the batch forever; over-long strings are cut to the column sizes.
 * A database that cannot be reached surfaces as StoreUnavailableError.
 *
 * Idempotent batches: write(events, batchId) first inserts the id into usage_batches
 * (ON CONFLICT DO NOTHING) in the same transaction; when the id is already there the
 * batch was written before, and nothing else is done. The purge removes batch ids
 * with the raw events of the same age.
 */
import type { EntityManager } from '@mikro-orm/knex';
import type { Knex } from '@mikro-orm/knex';
import type { Orm } from '../store/orm';
import { rethrowStoreError } from '../store/store';
import { InvalidArgumentError } from '../errors/domain';
import type { DayUsage, EndpointUsage, KeyUsage, UsageStats, UsageTotals } from '../gen/keyward/admin/v1/key_admin';
import type { UsageEvent, UsageSink } from './types';
import { addInto, BUCKET_COUNT, bucketOf, emptyBuckets, p95, parseBuckets } from './histogram';

/** Column sizes of usage_events / usage_daily / usage_monthly. */
const MAX = { id: 32, requestId: 128, endpoint: 512, method: 16, source: 16 } as const;
/** Raw events deleted per statement by the purge. */
const PURGE_CHUNK = 10_000;
const DAY_MS = 86_400_000;
/** Events outside these years are not storable as `YYYY-MM-DD`. */
const MIN_AT = Date.UTC(1970, 0, 1);
const MAX_AT = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

export const MONTH_PATTERN = /^\d{4}-(0[1-9]|1[0-2])$/;

export interface UsageStore extends UsageSink {
  /**
   * Usage of one UTC calendar month (`YYYY-MM`) of an organization, optionally of one
   * key: totals and by endpoint (requests, most first) and by key (from usage_monthly),
   * and by day in order (from usage_daily). Throws InvalidArgumentError (field `month`)
   * for a malformed month.
   */
  stats(organizationId: string, month: string, keyId?: string): Promise<UsageStats>;
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

interface EventRow {
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

interface Aggregate {
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
  let s = v.includes('\u0000') ? v.replace(/\u0000/g, '') : v;
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
  if (
    organizationId === '' ||
    keyId === '' ||
    organizationId.length !== (e.organizationId as string).length ||
    keyId.length !== (e.keyId as string).length
  )
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

/** Records a batch id; no row is inserted (0 changes) when the batch was written before. */
const BATCH_SQL = {
  sqlite: 'insert into usage_batches (id, written_at) values (?, ?) on conflict (id) do nothing',
  postgres: 'insert into usage_batches (id, written_at) values ($1, $2) on conflict (id) do nothing',
} as const;
const BATCH_ID = /^[A-Za-z0-9_-]{1,32}$/;

const EVENT_COLUMNS = [
  'at',
  'organization_id',
  'key_id',
  'request_id',
  'endpoint',
  'method',
  'requests',
  'status_code',
  'duration_ms',
  'tokens',
  'cost_usd',
  'source',
];
const AGG_COLUMNS = [
  'organization_id',
  'key_id',
  'period',
  'endpoint',
  'method',
  'requests',
  'errors4xx',
  'errors5xx',
  'tokens',
  'cost_usd',
  'duration_count',
  'duration_sum_ms',
  'duration_buckets',
];
const SUMMED = ['requests', 'errors4xx', 'errors5xx', 'tokens', 'cost_usd', 'duration_count', 'duration_sum_ms'];

/** The SQL expression that adds the batch's histogram (excluded) to the stored one, element by element. */
function bucketMerge(dialect: 'sqlite' | 'postgres', table: string): string {
  const parts: string[] = [];
  for (let i = 0; i < BUCKET_COUNT; i++) {
    parts.push(
      dialect === 'postgres'
        ? `coalesce((${table}.duration_buckets->>${i})::numeric, 0) + coalesce((excluded.duration_buckets->>${i})::numeric, 0)`
        : `coalesce(json_extract(${table}.duration_buckets, '$[${i}]'), 0) + coalesce(json_extract(excluded.duration_buckets, '$[${i}]'), 0)`,
    );
  }
  const merged = dialect === 'postgres' ? `jsonb_build_array(${parts.join(', ')})` : `json_array(${parts.join(', ')})`;
  return `case when excluded.duration_count = 0 then ${table}.duration_buckets else ${merged} end`;
}

/**
 * The batch statements. SQLite: one row of `?` per statement, prepared once and run per
 * row. PostgreSQL: one statement per table whose parameters are column arrays (unnest),
 * in the order of EVENT_COLUMNS / AGG_COLUMNS.
 */
function eventSql(dialect: 'sqlite' | 'postgres'): string {
  const source =
    dialect === 'sqlite'
      ? `values (${EVENT_COLUMNS.map(() => '?').join(', ')})`
      : 'select to_timestamp(u.at / 1000.0), u.o, u.k, u.r, u.e, u.m, u.n, u.s, u.d, u.t, u.c, u.src ' +
        'from unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::smallint[], $8::smallint[], $9::float8[], $10::bigint[], $11::float8[], $12::text[]) ' +
        'as u(at, o, k, r, e, m, n, s, d, t, c, src)';
  return `insert into usage_events (${EVENT_COLUMNS.join(', ')}) ${source}`;
}

function upsertSql(dialect: 'sqlite' | 'postgres', table: 'usage_daily' | 'usage_monthly'): string {
  const source =
    dialect === 'sqlite'
      ? `values (${AGG_COLUMNS.map(() => '?').join(', ')})`
      : 'select u.o, u.k, u.p, u.e, u.m, u.n, u.e4, u.e5, u.t, u.c, u.dc, u.ds, u.b::jsonb ' +
        'from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::float8[], $11::bigint[], $12::float8[], $13::text[]) ' +
        'as u(o, k, p, e, m, n, e4, e5, t, c, dc, ds, b)';
  const sets = SUMMED.map((c) => `${c} = ${table}.${c} + excluded.${c}`);
  sets.push(`duration_buckets = ${bucketMerge(dialect, table)}`);
  return (
    `insert into ${table} (${AGG_COLUMNS.join(', ')}) ${source} ` +
    `on conflict (organization_id, key_id, period, endpoint, method) do update set ${sets.join(', ')}`
  );
}

/** A row's values in EVENT_COLUMNS order. */
function eventValues(r: EventRow): unknown[] {
  return [
    r.at,
    r.organizationId,
    r.keyId,
    r.requestId,
    r.endpoint,
    r.method,
    r.requests,
    r.statusCode,
    r.durationMs,
    r.tokens,
    r.costUsd,
    r.source,
  ];
}

/** An aggregate's values in AGG_COLUMNS order. */
function aggValues(a: Aggregate): unknown[] {
  return [
    a.organizationId,
    a.keyId,
    a.period,
    a.endpoint,
    a.method,
    a.requests,
    a.errors4xx,
    a.errors5xx,
    a.tokens,
    a.costUsd,
    a.durationCount,
    a.durationSumMs,
    JSON.stringify(a.buckets),
  ];
}

/** Rows of values → one array per column. */
function columnsOf(rows: unknown[][], width: number): unknown[][] {
  return Array.from({ length: width }, (_, i) => rows.map((r) => r[i]));
}

/** Sums of aggregate rows, turned into a UsageTotals message. */
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

interface AggregateRow {
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

const STAT_COLUMNS = [
  'key_id',
  'period',
  'endpoint',
  'method',
  'requests',
  'errors4xx',
  'errors5xx',
  'tokens',
  'cost_usd',
  'duration_count',
  'duration_sum_ms',
  'duration_buckets',
];

export function createUsageStore(orm: Orm, dialect: 'sqlite' | 'postgres'): UsageStore {
  const knex = (orm.em as unknown as EntityManager).getKnex();
  const at = (ms: number): Date | number => (dialect === 'postgres' ? new Date(ms) : ms);
  let skipped = 0;

  // The batch is written on the transaction's driver connection, outside the query
  // builder: prepared statements (SQLite) or three array-parameter statements
  // (PostgreSQL), instead of thousands of bound parameters through knex.
  const connectionOf = async (trx: Knex.Transaction): Promise<unknown> =>
    (trx as unknown as { client: { acquireConnection(): Promise<unknown> } }).client.acquireConnection();

  type Statement = { run(...values: unknown[]): unknown };
  const sqliteStatements = new WeakMap<object, { batch: Statement; event: Statement; daily: Statement; monthly: Statement }>();

  async function writeSqlite(
    trx: Knex.Transaction,
    rows: EventRow[],
    daily: Aggregate[],
    monthly: Aggregate[],
    batchId: string | undefined,
    now: number,
  ): Promise<boolean> {
    const db = (await connectionOf(trx)) as { prepare(sql: string): Statement };
    let st = sqliteStatements.get(db);
    if (!st) {
      st = {
        batch: db.prepare(BATCH_SQL.sqlite),
        event: db.prepare(eventSql('sqlite')),
        daily: db.prepare(upsertSql('sqlite', 'usage_daily')),
        monthly: db.prepare(upsertSql('sqlite', 'usage_monthly')),
      };
      sqliteStatements.set(db, st);
    }
    if (batchId !== undefined && (st.batch.run(batchId, now) as { changes: number }).changes === 0) return false;
    for (const r of rows) st.event.run(...eventValues(r));
    for (const a of daily) st.daily.run(...aggValues(a));
    for (const a of monthly) st.monthly.run(...aggValues(a));
    return true;
  }

  const EVENTS_PG = eventSql('postgres');
  const DAILY_PG = upsertSql('postgres', 'usage_daily');
  const MONTHLY_PG = upsertSql('postgres', 'usage_monthly');

  async function writePostgres(
    trx: Knex.Transaction,
    rows: EventRow[],
    daily: Aggregate[],
    monthly: Aggregate[],
    batchId: string | undefined,
    now: number,
  ): Promise<boolean> {
    const conn = (await connectionOf(trx)) as { query(sql: string, values: unknown[]): Promise<{ rowCount?: number | null }> };
    if (batchId !== undefined && (await conn.query(BATCH_SQL.postgres, [batchId, new Date(now)])).rowCount === 0) return false;
    await conn.query(EVENTS_PG, columnsOf(rows.map(eventValues), EVENT_COLUMNS.length));
    if (daily.length > 0) await conn.query(DAILY_PG, columnsOf(daily.map(aggValues), AGG_COLUMNS.length));
    if (monthly.length > 0) await conn.query(MONTHLY_PG, columnsOf(monthly.map(aggValues), AGG_COLUMNS.length));
    return true;
  }

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
      const now = Date.now();
      let written = false;
      try {
        written = await knex.transaction((trx) =>
          dialect === 'sqlite'
            ? writeSqlite(trx, rows, daily, monthly, batchId, now)
            : writePostgres(trx, rows, daily, monthly, batchId, now),
        );
      } catch (e) {
        rethrowStoreError(e);
      }
      if (written) skipped += bad;
      return written;
    },

    async stats(organizationId, month, keyId) {
      if (!MONTH_PATTERN.test(month)) throw new InvalidArgumentError('month', 'must be YYYY-MM', 'invalid_month');
      let monthRows: AggregateRow[];
      let dayRows: AggregateRow[];
      try {
        const byKey = (q: Knex.QueryBuilder) => {
          if (keyId) q.where('key_id', keyId);
        };
        monthRows = await knex('usage_monthly')
          .where({ organization_id: organizationId, period: month })
          .modify(byKey)
          .select(STAT_COLUMNS);
        dayRows = await knex('usage_daily')
          .where('organization_id', organizationId)
          .andWhere('period', '>=', `${month}-01`)
          .andWhere('period', '<=', `${month}-31`)
          .modify(byKey)
          .select(STAT_COLUMNS);
      } catch (e) {
        return rethrowStoreError(e);
      }

      const totals = new Totals();
      const endpoints = new Map<string, { endpoint: string; method: string; t: Totals }>();
      const keys = new Map<string, Totals>();
      for (const r of monthRows) {
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
      const byEndpoint: EndpointUsage[] = [...endpoints.values()]
        .sort((a, b) => b.t.requests - a.t.requests || cmp(a.endpoint, b.endpoint) || cmp(a.method, b.method))
        .map((e) => ({ endpoint: e.endpoint, method: e.method, totals: e.t.message() }));
      const byKey: KeyUsage[] = [...keys.entries()]
        .sort((a, b) => b[1].requests - a[1].requests || cmp(a[0], b[0]))
        .map(([id, t]) => ({ keyId: id, totals: t.message() }));
      const byDay: DayUsage[] = [...days.entries()].sort((a, b) => cmp(a[0], b[0])).map(([day, t]) => ({ day, totals: t.message() }));
      return { organizationId, month, keyId: keyId ?? '', totals: totals.message(), byEndpoint, byKey, byDay };
    },

    async purgeEventsBefore(date) {
      const cutoff = at(date.getTime());
      let total = 0;
      try {
        for (;;) {
          const n = await knex('usage_events')
            .whereIn('id', (q) => {
              void q.select('id').from('usage_events').where('at', '<', cutoff).orderBy('id').limit(PURGE_CHUNK);
            })
            .del();
          total += Number(n);
          if (Number(n) < PURGE_CHUNK) break;
        }
        // Batch ids only guard retries and replays, which happen within hours.
        await knex('usage_batches').where('written_at', '<', cutoff).del();
        return total;
      } catch (e) {
        return rethrowStoreError(e);
      }
    },
  };
}
