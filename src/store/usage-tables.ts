/**
 * The SQL of the usage tables (src/usage/store.ts's UsageTables). A batch is written on
 * the transaction's driver connection, outside the query builder: on SQLite prepared
 * statements run per row, on PostgreSQL one statement per table with column arrays
 * (unnest), instead of thousands of bound parameters through knex. Aggregates are
 * upserted with INSERT ... ON CONFLICT DO UPDATE adding the batch's sums, the latency
 * histogram (a JSON array) merged element by element in the same statement: atomic,
 * with no read-modify-write. A batch id goes first into usage_batches (ON CONFLICT DO
 * NOTHING): already there, the batch was written before and nothing else is done.
 */
import type { EntityManager, Knex } from '@mikro-orm/knex';
import type { Aggregate, EventRow, UsageTables } from '../usage/store';
import type { SecurityCell } from '../events/security';
import { BUCKET_COUNT } from '../usage/histogram';
import type { Orm } from './orm';
import { rethrowStoreError } from './store';

export type UsageDialect = 'sqlite' | 'postgres';

/** Raw events deleted per statement by the purge. */
const PURGE_CHUNK = 10_000;

/** Records a batch id; no row is inserted (0 changes) when the batch was written before. */
const BATCH_SQL = {
  sqlite: 'insert into usage_batches (id, written_at) values (?, ?) on conflict (id) do nothing',
  postgres: 'insert into usage_batches (id, written_at) values ($1, $2) on conflict (id) do nothing',
} as const;

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
/** The aggregate columns GetUsageStats reads; written with organization_id first. */
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
const AGG_COLUMNS = ['organization_id', ...STAT_COLUMNS];
const SUMMED = ['requests', 'errors4xx', 'errors5xx', 'tokens', 'cost_usd', 'duration_count', 'duration_sum_ms'];

/**
 * Adds a security event cell to its audit row (src/events/security.ts): inserted the
 * first time, then occurrences added, first and last seen widened, and the latest
 * client address kept.
 */
function securitySql(dialect: UsageDialect): string {
  const p = dialect === 'sqlite' ? (_: number) => '?' : (i: number) => `$${i}`;
  const [least, greatest] = dialect === 'sqlite' ? ['min', 'max'] : ['least', 'greatest'];
  const params = Array.from({ length: 12 }, (_, i) => p(i + 1));
  params.splice(1, 0, "'keyward'"); // the actor
  return (
    'insert into audit_events (at, actor, action, organization_id, key_id, outcome, reason, subject, window_start, occurrences, first_seen, last_seen, client_address) ' +
    `values (${params.join(', ')}) ` +
    'on conflict (action, subject, window_start) do update set ' +
    'occurrences = audit_events.occurrences + excluded.occurrences, ' +
    `first_seen = ${least}(audit_events.first_seen, excluded.first_seen), ` +
    `last_seen = ${greatest}(audit_events.last_seen, excluded.last_seen), ` +
    'client_address = case when excluded.last_seen >= audit_events.last_seen and excluded.client_address is not null ' +
    'then excluded.client_address else audit_events.client_address end'
  );
}

/** A security cell's values in securitySql's order; times as `time` makes them. */
function securityValues(c: SecurityCell, time: (ms: number) => Date | number): unknown[] {
  return [
    time(c.firstSeen),
    c.kind,
    c.organizationId,
    c.keyId ?? null,
    c.outcome,
    c.reason.slice(0, 500) || null,
    c.subject,
    time(c.windowStart),
    c.count,
    time(c.firstSeen),
    time(c.lastSeen),
    c.client.slice(0, 64) || null,
  ];
}

/** The SQL expression that adds the batch's histogram (excluded) to the stored one, element by element. */
function bucketMerge(dialect: UsageDialect, table: string): string {
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
function eventSql(dialect: UsageDialect): string {
  const source =
    dialect === 'sqlite'
      ? `values (${EVENT_COLUMNS.map(() => '?').join(', ')})`
      : 'select to_timestamp(u.at / 1000.0), u.o, u.k, u.r, u.e, u.m, u.n, u.s, u.d, u.t, u.c, u.src ' +
        'from unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::smallint[], $8::smallint[], $9::float8[], $10::bigint[], $11::float8[], $12::text[]) ' +
        'as u(at, o, k, r, e, m, n, s, d, t, c, src)';
  return `insert into usage_events (${EVENT_COLUMNS.join(', ')}) ${source}`;
}

function upsertSql(dialect: UsageDialect, table: 'usage_daily' | 'usage_monthly'): string {
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

export function createUsageTables(orm: Orm, dialect: UsageDialect): UsageTables {
  const knex = (orm.em as unknown as EntityManager).getKnex();
  const at = (ms: number): Date | number => (dialect === 'postgres' ? new Date(ms) : ms);

  const connectionOf = async (trx: Knex.Transaction): Promise<unknown> =>
    (trx as unknown as { client: { acquireConnection(): Promise<unknown> } }).client.acquireConnection();

  type Statement = { run(...values: unknown[]): unknown };
  const sqliteStatements = new WeakMap<
    object,
    { batch: Statement; event: Statement; daily: Statement; monthly: Statement; security: Statement }
  >();

  async function writeSqlite(
    trx: Knex.Transaction,
    rows: readonly EventRow[],
    daily: readonly Aggregate[],
    monthly: readonly Aggregate[],
    batchId: string | undefined,
    alsoIds: readonly string[],
    security: readonly SecurityCell[],
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
        security: db.prepare(securitySql('sqlite')),
      };
      sqliteStatements.set(db, st);
    }
    if (batchId !== undefined && (st.batch.run(batchId, now) as { changes: number }).changes === 0) return false;
    for (const id of alsoIds) st.batch.run(id, now);
    for (const r of rows) st.event.run(...eventValues(r));
    for (const a of daily) st.daily.run(...aggValues(a));
    for (const a of monthly) st.monthly.run(...aggValues(a));
    for (const c of security) st.security.run(...securityValues(c, (ms) => ms));
    return true;
  }

  const EVENTS_PG = eventSql('postgres');
  const DAILY_PG = upsertSql('postgres', 'usage_daily');
  const MONTHLY_PG = upsertSql('postgres', 'usage_monthly');
  const SECURITY_PG = securitySql('postgres');

  async function writePostgres(
    trx: Knex.Transaction,
    rows: readonly EventRow[],
    daily: readonly Aggregate[],
    monthly: readonly Aggregate[],
    batchId: string | undefined,
    alsoIds: readonly string[],
    security: readonly SecurityCell[],
    now: number,
  ): Promise<boolean> {
    const conn = (await connectionOf(trx)) as { query(sql: string, values: unknown[]): Promise<{ rowCount?: number | null }> };
    if (batchId !== undefined && (await conn.query(BATCH_SQL.postgres, [batchId, new Date(now)])).rowCount === 0) return false;
    for (const id of alsoIds) await conn.query(BATCH_SQL.postgres, [id, new Date(now)]);
    if (rows.length > 0) await conn.query(EVENTS_PG, columnsOf(rows.map(eventValues), EVENT_COLUMNS.length));
    if (daily.length > 0) await conn.query(DAILY_PG, columnsOf(daily.map(aggValues), AGG_COLUMNS.length));
    if (monthly.length > 0) await conn.query(MONTHLY_PG, columnsOf(monthly.map(aggValues), AGG_COLUMNS.length));
    for (const c of security)
      await conn.query(
        SECURITY_PG,
        securityValues(c, (ms) => new Date(ms)),
      );
    return true;
  }

  const byKey = (keyId: string | undefined) => (q: Knex.QueryBuilder) => {
    if (keyId) q.where('key_id', keyId);
  };

  return {
    async writeBatch({ events, daily, monthly, batchId, alsoIds = [], security = [], nowMs }) {
      try {
        return await knex.transaction((trx) =>
          dialect === 'sqlite'
            ? writeSqlite(trx, events, daily, monthly, batchId, alsoIds, security, nowMs)
            : writePostgres(trx, events, daily, monthly, batchId, alsoIds, security, nowMs),
        );
      } catch (e) {
        return rethrowStoreError(e);
      }
    },

    async monthEndpoints(organizationId, month) {
      try {
        const rows: { endpoint: string }[] = await knex('usage_monthly')
          .where({ organization_id: organizationId, period: month })
          .distinct('endpoint');
        return rows.map((r) => r.endpoint);
      } catch (e) {
        return rethrowStoreError(e);
      }
    },

    async monthRows(organizationId, month, keyId) {
      try {
        return await knex('usage_monthly')
          .where({ organization_id: organizationId, period: month })
          .modify(byKey(keyId))
          .select(STAT_COLUMNS);
      } catch (e) {
        return rethrowStoreError(e);
      }
    },

    async dayRows(organizationId, month, keyId) {
      try {
        return await knex('usage_daily')
          .where('organization_id', organizationId)
          .andWhere('period', '>=', `${month}-01`)
          .andWhere('period', '<=', `${month}-31`)
          .modify(byKey(keyId))
          .select(STAT_COLUMNS);
      } catch (e) {
        return rethrowStoreError(e);
      }
    },

    async dayRangeRows(organizationId, fromDay, toDay, keyId) {
      try {
        return await knex('usage_daily')
          .where('organization_id', organizationId)
          .andWhere('period', '>=', fromDay)
          .andWhere('period', '<', toDay)
          .modify(byKey(keyId))
          .select(STAT_COLUMNS);
      } catch (e) {
        return rethrowStoreError(e);
      }
    },

    async purgeBefore(date) {
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
