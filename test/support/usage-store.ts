/**
 * The fixture of the usage store tests (test/usage.store.*.test.ts): a migrated
 * database per dialect, event builders and readers of the raw and aggregate tables.
 */
import type { EntityManager, Knex } from '@mikro-orm/knex';
import { openOrm, migrate, type Orm } from '../../src/store/orm';
import { createUsageStore, type UsageStore } from '../../src/usage/store';
import { createUsageTables } from '../../src/store/usage-tables';
import type { UsageEvent } from '../../src/usage/types';
import { newId } from '../../src/util/ids';
import { createTestDatabase, type Dialect, type TestDatabase } from './databases';

export const T0 = Date.UTC(2026, 2, 10, 9, 30, 0); // 2026-03-10
export const DAY = 86_400_000;
export const zeros = () => new Array<number>(16).fill(0);
/** A histogram with `counts[i]` in bucket i. */
export const hist = (counts: Record<number, number>) => {
  const h = zeros();
  for (const [i, c] of Object.entries(counts)) h[Number(i)] = c;
  return h;
};

/** A stored time: epoch ms on SQLite; timestamptz text (or a Date) on PostgreSQL. */
function epochMs(v: unknown): number {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'number') return v;
  return Date.parse(String(v));
}

export interface AggRow {
  organization_id: string;
  key_id: string;
  period: string;
  endpoint: string;
  method: string;
  requests: number;
  errors4xx: number;
  errors5xx: number;
  tokens: number;
  cost_usd: number;
  duration_count: number;
  duration_sum_ms: number;
  duration_buckets: number[];
}

export interface RawEventRow {
  at: number;
  key_id: unknown;
  request_id: unknown;
  endpoint: unknown;
  method: unknown;
  requests: number;
  status_code: number | null;
  duration_ms: number | null;
  tokens: number | null;
  cost_usd: number | null;
  source: unknown;
}

export interface UsageStoreFixture {
  /** Filled in by beforeAll. */
  usage: UsageStore;
  /** Filled in by beforeAll: raw SQL on the same database. */
  knex: Knex;
  /** A fresh organization or key id, after T0. */
  orgId: () => string;
  keyId: () => string;
  /** An access-log event (requests 0) at T0, and an allowed Check (requests 1). */
  ev: (org: string, key: string, over?: Partial<UsageEvent>) => UsageEvent;
  check: (org: string, key: string, over?: Partial<UsageEvent>) => UsageEvent;
  /** An organization's aggregate rows, by key, period, endpoint and method. */
  aggRows: (table: 'usage_daily' | 'usage_monthly', org: string) => Promise<AggRow[]>;
  /** An organization's raw events, in id order. */
  rawEvents: (org: string) => Promise<RawEventRow[]>;
}

/** Registers beforeAll/afterAll opening and closing a migrated usage store on `dialect`. */
export function usageStoreOn(dialect: Dialect): UsageStoreFixture {
  let db: TestDatabase;
  let orm: Orm;
  let usage: UsageStore;
  let knex: Knex;
  let n = 0;
  const store = {} as UsageStoreFixture;
  const orgId = () => newId('org', T0 + ++n);
  const keyId = () => newId('key', T0 + ++n);

  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    orm = await openOrm(db.config);
    await migrate(orm);
    usage = createUsageStore(createUsageTables(orm, dialect));
    knex = (orm.em as unknown as EntityManager).getKnex();
    Object.assign(store, { usage, knex });
  });
  afterAll(async () => {
    await orm.close(true);
    await db.dispose();
  });

  const ev = (org: string, key: string, over: Partial<UsageEvent> = {}): UsageEvent => ({
    at: T0,
    organizationId: org,
    keyId: key,
    endpoint: '/v1/chat/completions',
    method: 'POST',
    requests: 0,
    source: 'accesslog',
    ...over,
  });
  const check = (org: string, key: string, over: Partial<UsageEvent> = {}) => ev(org, key, { requests: 1, source: 'check', ...over });

  const aggRows = async (table: 'usage_daily' | 'usage_monthly', org: string): Promise<AggRow[]> => {
    const rows = await knex(table).where('organization_id', org).orderBy(['key_id', 'period', 'endpoint', 'method']).select('*');
    return rows.map((r: Record<string, unknown>) => ({
      organization_id: String(r.organization_id),
      key_id: String(r.key_id),
      period: String(r.period),
      endpoint: String(r.endpoint),
      method: String(r.method),
      requests: Number(r.requests),
      errors4xx: Number(r.errors4xx),
      errors5xx: Number(r.errors5xx),
      tokens: Number(r.tokens),
      cost_usd: Number(r.cost_usd),
      duration_count: Number(r.duration_count),
      duration_sum_ms: Number(r.duration_sum_ms),
      duration_buckets: (typeof r.duration_buckets === 'string' ? JSON.parse(r.duration_buckets) : r.duration_buckets) as number[],
    }));
  };
  const rawEvents = async (org: string) => {
    const rows = await knex('usage_events').where('organization_id', org).orderBy('id').select('*');
    return rows.map((r: Record<string, unknown>) => ({
      at: epochMs(r.at),
      key_id: r.key_id,
      request_id: r.request_id,
      endpoint: r.endpoint,
      method: r.method,
      requests: Number(r.requests),
      status_code: r.status_code === null ? null : Number(r.status_code),
      duration_ms: r.duration_ms === null ? null : Number(r.duration_ms),
      tokens: r.tokens === null ? null : Number(r.tokens),
      cost_usd: r.cost_usd === null ? null : Number(r.cost_usd),
      source: r.source,
    }));
  };

  return Object.assign(store, { orgId, keyId, ev, check, aggRows, rawEvents });
}
