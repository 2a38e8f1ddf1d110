/**
 * Usage ingestion: events per second the usage batcher writes to PostgreSQL.
 *
 * Opens the store on a fresh PostgreSQL database (BENCH_PG_URL, default
 * postgres://postgres@127.0.0.1:5432/postgres is used to create
 * `keyward_bench_ingest`, dropped at the end), migrates it, then records
 * BENCH_INGEST_EVENTS events (default 500000) into a UsageBatcher as fast as
 * record() takes them: Check-shaped events over 1,000 keys and 20 endpoints, with a
 * request id, in a 3-day window. The batcher flushes every BENCH_INGEST_BATCH
 * (default 5000, the server's default flushAt) events, one flush at a time, as in
 * the server. It prints events/s from the first record() to the last flush's
 * commit, and checks the stored count (raw events and the monthly aggregate).
 *
 *   node --import tsx bench/ingest.ts
 */
import type { EntityManager } from '@mikro-orm/knex';
import { Client } from 'pg';
import { parseDatabaseUrl } from '../src/config';
import { migrate, openOrm } from '../src/store/orm';
import { UsageBatcher } from '../src/usage/batcher';
import { createUsageStore } from '../src/usage/store';
import type { UsageEvent } from '../src/usage/types';

const EVENTS = Number(process.env.BENCH_INGEST_EVENTS ?? 500_000);
const BATCH = Number(process.env.BENCH_INGEST_BATCH ?? 5000);
const ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB = 'keyward_bench_ingest';

async function admin(sql: string): Promise<void> {
  const c = new Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

async function main(): Promise<void> {
  await admin(`drop database if exists ${DB} with (force)`);
  await admin(`create database ${DB}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${DB}`;
  const orm = await openOrm(parseDatabaseUrl(url.toString()));
  try {
    await migrate(orm);
    const store = createUsageStore(orm, 'postgres');
    const errors: unknown[] = [];
    const batcher = new UsageBatcher(store, { maxBuffered: Math.max(EVENTS, 200_000), flushAt: BATCH, onError: (e) => errors.push(e) });

    const keys = Array.from({ length: 1000 }, (_, i) => `key_bench${String(i).padStart(6, '0')}`);
    const endpoints = Array.from({ length: 20 }, (_, i) => `/v1/resource${i}`);
    const start = Date.UTC(2026, 10, 20);
    const events = new Array<UsageEvent>(EVENTS);
    for (let i = 0; i < EVENTS; i++) {
      events[i] = {
        at: start + Math.floor((i / EVENTS) * 3 * 86_400_000),
        organizationId: 'org_bench',
        keyId: keys[i % keys.length]!,
        requestId: `req-${i}`,
        endpoint: endpoints[(i * 7) % endpoints.length]!,
        method: i % 5 === 0 ? 'POST' : 'GET',
        requests: 1,
        source: 'check',
      };
    }

    console.log(`# usage ingestion into PostgreSQL: ${EVENTS.toLocaleString('en-US')} events, flush every ${BATCH} (one write at a time)`);
    const t0 = performance.now();
    for (let i = 0; i < EVENTS; i++) {
      batcher.record(events[i]!);
      // Let the flush in flight progress, as the server's event loop would.
      if (i % BATCH === BATCH - 1) await new Promise((r) => setImmediate(r));
    }
    await batcher.flush();
    const seconds = (performance.now() - t0) / 1000;
    const stats = batcher.stats();

    const knex = (orm.em as unknown as EntityManager).getKnex();
    const raw = Number((await knex('usage_events').count({ n: '*' }))[0]!.n);
    const monthly = Number((await knex('usage_monthly').sum({ n: 'requests' }))[0]!.n);
    const rate = EVENTS / seconds;
    console.log(`| figure | value |\n| --- | --- |`);
    console.log(
      `| events written | ${stats.flushed.toLocaleString('en-US')} (raw rows ${raw.toLocaleString('en-US')}, monthly requests ${monthly.toLocaleString('en-US')}) |`,
    );
    console.log(`| time | ${seconds.toFixed(2)} s |`);
    console.log(`| usage ingestion | ${Math.round(rate).toLocaleString('en-US')} events/s |`);
    console.log(`| flush errors | ${stats.flushErrors} |`);
    if (raw !== EVENTS || monthly !== EVENTS || errors.length) console.log(`MISMATCH or errors: ${errors.map(String).join('; ')}`);
    console.log(
      `BENCH_RESULT ${JSON.stringify({ usageIngestEventsPerSec: Math.round(rate), events: EVENTS, batch: BATCH, rawRows: raw, flushErrors: stats.flushErrors })}`,
    );
  } finally {
    await orm.close(true);
    await admin(`drop database if exists ${DB} with (force)`);
  }
}

main().catch((e) => {
  console.error(`ingest bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
