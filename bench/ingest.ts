/**
 * Usage ingestion and table growth: what 1,000,000 allowed Checks cost the database.
 *
 * For each scheme, on a fresh PostgreSQL database (created through BENCH_PG_URL,
 * default postgres://postgres@127.0.0.1:5432/postgres, and dropped at the end):
 *  - `before`, the event-per-request scheme: every Check a row of usage_events, plus
 *    the daily and monthly aggregates, written in batches of BENCH_INGEST_BATCH
 *    (5,000, the old flushAt) through UsageStore.writeEvents (the old write, unchanged);
 *  - `after`, the summed scheme: each Check recorded into the UsageBatcher the server
 *    uses (cells per organization, key, endpoint, method and hour), flushed every
 *    5 s of traffic (KEYWARD_USAGE_FLUSH_SECONDS' default) at BENCH_INGEST_RATE Checks
 *    a second (default 1,000).
 * The traffic: BENCH_INGEST_EVENTS Checks (default 1,000,000) at that rate, over 10
 * organizations, 100 keys (a few busy, most quiet) and 20 endpoints with two methods.
 * It prints the rows written (inserted or upserted), the growth of the usage tables in
 * bytes (pg_total_relation_size, after VACUUM), both per 1,000,000 Checks, the time,
 * and checks that both schemes stored every request.
 *
 *   node --import tsx bench/ingest.ts
 */
import type { EntityManager } from '@mikro-orm/knex';
import { Client } from 'pg';
import { parseDatabaseUrl } from '../src/config';
import { migrate, openOrm, type Orm } from '../src/store/orm';
import { UsageBatcher } from '../src/usage/batcher';
import { createUsageStore } from '../src/usage/store';
import { createUsageTables } from '../src/store/usage-tables';
import { cellsOf, type UsageCell } from '../src/usage/cells';
import type { UsageBatch, UsageEvent } from '../src/usage/types';
import { table } from './support/table';

const EVENTS = Number(process.env.BENCH_INGEST_EVENTS ?? 1_000_000);
const BATCH = Number(process.env.BENCH_INGEST_BATCH ?? 5000);
const RATE = Number(process.env.BENCH_INGEST_RATE ?? 1000);
const FLUSH_MS = 5000;
const ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const TABLES = ['usage_events', 'usage_daily', 'usage_monthly', 'usage_batches'];

async function admin(sql: string): Promise<void> {
  const c = new Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** A deterministic generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function traffic(): UsageEvent[] {
  const next = random(42);
  const keys = Array.from({ length: 100 }, (_, i) => ({ key: `key_bench${String(i).padStart(6, '0')}`, org: `org_bench${i % 10}` }));
  const endpoints = Array.from({ length: 20 }, (_, i) => `/v1/resource${i}/{id}`);
  const start = Date.UTC(2026, 10, 20, 9, 30);
  return Array.from({ length: EVENTS }, (_, i) => {
    // Skewed: the busiest keys and endpoints take most of the traffic.
    const k = keys[Math.floor(keys.length * next() ** 3)]!;
    return {
      at: start + Math.floor((i * 1000) / RATE),
      organizationId: k.org,
      keyId: k.key,
      requestId: `req-${i}`,
      endpoint: endpoints[Math.floor(endpoints.length * next() ** 2)]!,
      method: next() < 0.2 ? 'POST' : 'GET',
      requests: 1 as const,
      source: 'check' as const,
    };
  });
}

/** The aggregate rows a batch upserts: distinct (organization, key, day or month, endpoint, method). */
function aggregateRows(cells: readonly UsageCell[]): number {
  const daily = new Set<string>();
  const monthly = new Set<string>();
  for (const c of cells) {
    const day = new Date(c.hour).toISOString().slice(0, 10);
    const id = `${c.organizationId}\u0000${c.keyId}\u0000${c.endpoint}\u0000${c.method}`;
    daily.add(`${id}\u0000${day}`);
    monthly.add(`${id}\u0000${day.slice(0, 7)}`);
  }
  return daily.size + monthly.size;
}

interface Result {
  scheme: string;
  rows: number;
  bytes: number;
  seconds: number;
  stored: number;
}

async function sizes(orm: Orm): Promise<number> {
  const knex = (orm.em as unknown as EntityManager).getKnex();
  await knex.raw(`vacuum ${TABLES.join(', ')}`);
  const row = await knex.raw<{ rows: { bytes: string }[] }>(
    `select ${TABLES.map((t) => `pg_total_relation_size('${t}')`).join(' + ')} as bytes`,
  );
  return Number(row.rows[0]!.bytes);
}

async function onFreshDatabase(name: string, run: (orm: Orm) => Promise<Omit<Result, 'bytes' | 'stored'>>): Promise<Result> {
  const db = `keyward_bench_ingest_${name}`;
  await admin(`drop database if exists ${db} with (force)`);
  await admin(`create database ${db}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${db}`;
  const orm = await openOrm(parseDatabaseUrl(url.toString()));
  try {
    await migrate(orm);
    const empty = await sizes(orm);
    const result = await run(orm);
    const bytes = (await sizes(orm)) - empty;
    const knex = (orm.em as unknown as EntityManager).getKnex();
    const stored = Number((await knex('usage_monthly').sum({ n: 'requests' }))[0]!.n);
    return { ...result, bytes, stored };
  } finally {
    await orm.close(true);
    await admin(`drop database if exists ${db} with (force)`);
  }
}

async function main(): Promise<void> {
  const events = traffic();
  console.log(
    `# usage ingestion and table growth in PostgreSQL: ${EVENTS.toLocaleString('en-US')} allowed Checks at ${RATE}/s of traffic time`,
  );

  const before = await onFreshDatabase('before', async (orm) => {
    const store = createUsageStore(createUsageTables(orm, 'postgres'));
    let rows = 0;
    const t0 = performance.now();
    for (let i = 0; i < events.length; i += BATCH) {
      const batch = events.slice(i, i + BATCH);
      rows += batch.length + aggregateRows(cellsOf(batch));
      await store.writeEvents(batch);
    }
    return { scheme: 'before: a row per Check, batches of 5,000', rows, seconds: (performance.now() - t0) / 1000 };
  });

  const after = await onFreshDatabase('after', async (orm) => {
    const store = createUsageStore(createUsageTables(orm, 'postgres'));
    let rows = 0;
    const counting = {
      write(batch: UsageBatch, id?: string) {
        rows += batch.events.length + aggregateRows(batch.cells) + (id === undefined ? 0 : 1);
        return store.write(batch, id);
      },
    };
    const batcher = new UsageBatcher(counting, { maxBuffered: 200_000 });
    const t0 = performance.now();
    let nextFlush = events[0]!.at + FLUSH_MS;
    for (const e of events) {
      if (e.at >= nextFlush) {
        await batcher.flush();
        nextFlush += FLUSH_MS;
      }
      batcher.record(e);
    }
    await batcher.flush();
    return { scheme: 'after: summed cells, a flush every 5 s', rows, seconds: (performance.now() - t0) / 1000 };
  });

  const per = (n: number) => Math.round((n * 1_000_000) / EVENTS);
  const mb = (n: number) => `${(per(n) / 1024 / 1024).toFixed(1)} MB`;
  console.log(
    table(
      ['scheme', 'rows written per 1M Checks', 'table growth per 1M Checks', 'time', 'Checks/s written', 'requests stored'],
      [before, after].map((r) => [
        r.scheme,
        per(r.rows).toLocaleString('en-US'),
        mb(r.bytes),
        `${r.seconds.toFixed(1)} s`,
        Math.round(EVENTS / r.seconds).toLocaleString('en-US'),
        r.stored.toLocaleString('en-US'),
      ]),
    ),
  );
  if (before.stored !== EVENTS || after.stored !== EVENTS) console.log('MISMATCH: a scheme did not store every request');
  console.log(
    `BENCH_RESULT ${JSON.stringify({
      usageRowsPer1M: { before: per(before.rows), after: per(after.rows) },
      usageBytesPer1M: { before: per(before.bytes), after: per(after.bytes) },
      usageIngestChecksPerSec: { before: Math.round(EVENTS / before.seconds), after: Math.round(EVENTS / after.seconds) },
    })}`,
  );
}

main().catch((e) => {
  console.error(`ingest bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
