/** 2. Access-log ingestion: entries streamed to keyward until stored in PostgreSQL. */
import { performance } from 'node:perf_hooks';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { Client as PgClient } from 'pg';
import { StreamAccessLogsMessage } from '../../src/gen/envoy/service/accesslog/v3/als';
import { RequestMethod } from '../../src/gen/envoy/config/core/v3/base';
import { Environment, KeyAdminClient } from '../../src/gen/keyward/admin/v1/key_admin';
import { entryToUsage } from '../../src/usage/access-log';
import { type ServerProcess } from '../../test/support/server-process';
import { accessLogEntry } from '../support/access-log';
import { ALS_PATH, identity } from '../support/keyward';
import { ALS_BATCH, ALS_SETTLE_MS, ENTRY_START, POOL } from './settings';
import { cpuSeconds, fmtInt, pgBackendCpu, round, unary } from './helpers';

export interface PoolSlot {
  bytes: Buffer;
  entries: number;
  errors4xx: number;
  errors5xx: number;
  tokens: number;
  costUsd: number;
}

export const PATHS: [RequestMethod, string][] = [
  [RequestMethod.POST, '/v1/chat/completions?stream=false'],
  [RequestMethod.POST, '/v1/chat/completions'],
  [RequestMethod.GET, '/v1/models'],
  [RequestMethod.POST, '/v1/agents/run'],
];

/**
 * POOL distinct StreamAccessLogsMessages of `batch` entries for one key, encoded once.
 * Slot 0 also carries the stream identifier (Envoy sends it in the first message only);
 * the others are plain batches. Response codes: 1 in 20 entries is a 429, 1 in 20 a
 * 503, the rest 200. Every entry must be meterable by keyward's own mapping.
 */
export function buildPool(keyId: string, orgId: string, batch: number): { first: PoolSlot; rest: PoolSlot[] } {
  const make = (slot: number, withIdentifier: boolean): PoolSlot => {
    let errors4xx = 0;
    let errors5xx = 0;
    let tokens = 0;
    let costUsd = 0;
    const entries = Array.from({ length: batch }, (_, j) => {
      const n = slot * batch + j;
      const code = n % 20 === 7 ? 429 : n % 20 === 13 ? 503 : 200;
      const tok = code === 200 ? 100 + (n % 900) : 0;
      const cost = tok * 0.000002;
      if (code === 429) errors4xx++;
      if (code === 503) errors5xx++;
      tokens += tok;
      costUsd += cost;
      const [method, path] = PATHS[n % PATHS.length]!;
      return accessLogEntry({
        keyId,
        orgId,
        start: ENTRY_START,
        method,
        path,
        code,
        ms: 5 + ((n * 37) % 1500),
        tokens: tok,
        costUsd: cost,
      });
    });
    const msg = StreamAccessLogsMessage.fromPartial({
      ...(withIdentifier && { identifier: { node: { id: 'bench-envoy', cluster: 'bench' }, logName: 'keyward' } }),
      httpLogs: { logEntry: entries },
    });
    const bytes = Buffer.from(StreamAccessLogsMessage.encode(msg).finish());
    // Round trip through keyward's own decoder and mapping: every entry must count.
    const back = StreamAccessLogsMessage.decode(bytes).httpLogs?.logEntry ?? [];
    const meterable = back.filter(
      (e) => entryToUsage(e, { tokensHeader: 'x-usage-tokens', costHeader: 'x-usage-cost-usd' }, Date.now()) !== undefined,
    ).length;
    if (back.length !== batch || meterable !== batch)
      throw new Error(`pool message ${slot}: ${meterable}/${back.length} of ${batch} entries meterable after a round trip`);
    return { bytes, entries: batch, errors4xx, errors5xx, tokens, costUsd };
  };
  return { first: make(0, true), rest: Array.from({ length: POOL }, (_, i) => make(i + 1, false)) };
}

/** Writes `count` messages (pool.first, then pool.rest cycled) as fast as backpressure allows; resolves on the server's answer. */
export function streamMessages(
  client: Client,
  pool: { first: PoolSlot; rest: PoolSlot[] },
  count: number,
  offset: number,
): Promise<{ answeredAt: number; sent: PoolSlot[] }> {
  return new Promise((resolve, reject) => {
    const sent: PoolSlot[] = [];
    const call = client.makeClientStreamRequest<Buffer, Buffer>(
      ALS_PATH,
      identity,
      identity,
      new Metadata(),
      { deadline: Date.now() + 600_000 },
      (e) => (e ? reject(e) : resolve({ answeredAt: performance.now(), sent })),
    );
    let i = 0;
    const pump = (): void => {
      while (i < count) {
        const slot = i === 0 ? pool.first : pool.rest[(offset + i) % pool.rest.length]!;
        i++;
        sent.push(slot);
        if (!call.write(slot.bytes)) {
          call.once('drain', pump);
          return;
        }
      }
      call.end();
    };
    pump();
  });
}

export interface AlsRun {
  streams: number;
  messages: number;
  entries: number;
  seconds: number;
  entriesPerSec: number;
  mbPerSec: number;
  /** keyward A's CPU from the first write to the last answer. */
  keywardCpuSeconds: number;
  /** keyward A's and its PostgreSQL backends' CPU from the first write until everything was stored (or the count settled). */
  keywardCpuSecondsTotal: number;
  postgresCpuSecondsTotal: number;
  /** usage_events rows of this run's key, source accesslog. */
  storedEvents: number;
  /** sum(duration_count) of usage_daily for the key. */
  storedDurationCount: number;
  statsTokens: number;
  expectedTokens: number;
  statsErrors4xx: number;
  expected4xx: number;
  statsErrors5xx: number;
  expected5xx: number;
  statsCostUsd: number;
  expectedCostUsd: number;
  /** From the first write until the stored count reached `entries` (or gave up). */
  persistedSeconds: number;
  persistedPerSec: number;
  match: boolean;
}

/** Polls the stored count of `keyId`'s access-log events until it reaches `want`, or stands still with no usage write running for ALS_SETTLE_MS. */
export async function waitStored(pg: PgClient, keyId: string, want: number): Promise<{ count: number; at: number }> {
  let last = -1;
  let since = performance.now();
  for (;;) {
    const n = Number(
      (await pg.query<{ n: string }>(`select count(*)::bigint as n from usage_events where key_id = $1 and source = 'accesslog'`, [keyId]))
        .rows[0]!.n,
    );
    if (n >= want) return { count: n, at: performance.now() };
    const writing = Number(
      (
        await pg.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle' and query ilike 'insert into usage_%'`,
        )
      ).rows[0]!.n,
    );
    if (n !== last || writing > 0) {
      last = n;
      since = performance.now();
    } else if (performance.now() - since > ALS_SETTLE_MS) {
      return { count: n, at: since };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function alsRun(
  admin: KeyAdminClient,
  server: ServerProcess,
  pg: PgClient,
  orgId: string,
  streams: number,
  wantEntries: number,
  label: string,
): Promise<AlsRun> {
  const k = await unary(admin.createKey.bind(admin), {
    requestId: '',
    organizationId: orgId,
    name: `als-${label}`,
    environment: Environment.ENVIRONMENT_LIVE,
    scopes: [],
    metadata: {},
  });
  const keyId = k.key!.id;
  const pool = buildPool(keyId, orgId, ALS_BATCH);
  const messages = Math.ceil(wantEntries / ALS_BATCH);
  const clients = Array.from(
    { length: streams },
    () => new Client(`127.0.0.1:${server.authzPort}`, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }),
  );
  await Promise.all(clients.map((c) => new Promise<void>((res, rej) => c.waitForReady(Date.now() + 10_000, (e) => (e ? rej(e) : res())))));

  const cpu0 = cpuSeconds(server.proc.pid);
  const pgCpu0 = await pgBackendCpu(pg);
  const t0 = performance.now();
  const results = await Promise.all(
    clients.map((c, s) => streamMessages(c, pool, Math.floor(messages / streams) + (s < messages % streams ? 1 : 0), s * 3)),
  );
  const t1 = Math.max(...results.map((r) => r.answeredAt));
  const cpu1 = cpuSeconds(server.proc.pid);
  for (const c of clients) c.close();

  const sent = results.flatMap((r) => r.sent);
  const entries = sent.reduce((a, s) => a + s.entries, 0);
  const bytes = sent.reduce((a, s) => a + s.bytes.length + 5, 0);
  const seconds = (t1 - t0) / 1000;
  console.log(
    `  ${label}: ${fmtInt(entries)} entries in ${sent.length} messages (${(bytes / 1e6).toFixed(1)} MB) answered after ${seconds.toFixed(2)}s = ${fmtInt(entries / seconds)} entries/s; waiting for the usage flush ...`,
  );

  const stored = await waitStored(pg, keyId, entries);
  const persistedSeconds = (stored.at - t0) / 1000;
  const cpu2 = cpuSeconds(server.proc.pid);
  const pgCpu = (await pgBackendCpu(pg)) - pgCpu0;
  const daily = Number(
    (await pg.query<{ n: string }>(`select coalesce(sum(duration_count), 0)::bigint as n from usage_daily where key_id = $1`, [keyId]))
      .rows[0]!.n,
  );
  const stats = await unary(admin.getUsageStats.bind(admin), {
    organizationId: orgId,
    month: ENTRY_START.toISOString().slice(0, 7),
    keyId,
    billingPeriod: false,
  });
  const t = stats.totals!;
  const expectedTokens = sent.reduce((a, s) => a + s.tokens, 0);
  const expected4xx = sent.reduce((a, s) => a + s.errors4xx, 0);
  const expected5xx = sent.reduce((a, s) => a + s.errors5xx, 0);
  const expectedCostUsd = sent.reduce((a, s) => a + s.costUsd, 0);
  const match =
    stored.count === entries &&
    daily === entries &&
    Number(t.tokens) === expectedTokens &&
    Number(t.errors4xx) === expected4xx &&
    Number(t.errors5xx) === expected5xx &&
    Math.abs(t.costUsd - expectedCostUsd) < 1e-6 * Math.max(1, expectedCostUsd);
  console.log(
    `  ${label}: sent ${fmtInt(entries)}, stored ${fmtInt(stored.count)} events (usage_daily duration_count ${fmtInt(daily)}; GetUsageStats tokens ${fmtInt(Number(t.tokens))}/${fmtInt(expectedTokens)}, ` +
      `4xx ${t.errors4xx}/${expected4xx}, 5xx ${t.errors5xx}/${expected5xx}, cost ${t.costUsd.toFixed(4)}/${expectedCostUsd.toFixed(4)}) after ${persistedSeconds.toFixed(1)}s` +
      (match
        ? ' - all counted'
        : `\n  !!!!! MISMATCH: ${fmtInt(entries - stored.count)} of ${fmtInt(entries)} access-log entries (${((100 * (entries - stored.count)) / entries).toFixed(1)}%) are not stored !!!!!`),
  );
  return {
    streams,
    messages: sent.length,
    entries,
    seconds: round(seconds),
    entriesPerSec: Math.round(entries / seconds),
    mbPerSec: round(bytes / 1e6 / seconds, 2),
    keywardCpuSeconds: round(cpu1 - cpu0, 2),
    keywardCpuSecondsTotal: round(cpu2 - cpu0, 2),
    postgresCpuSecondsTotal: round(pgCpu, 2),
    storedEvents: stored.count,
    storedDurationCount: daily,
    statsTokens: Number(t.tokens),
    expectedTokens,
    statsErrors4xx: Number(t.errors4xx),
    expected4xx,
    statsErrors5xx: Number(t.errors5xx),
    expected5xx,
    statsCostUsd: round(t.costUsd, 6),
    expectedCostUsd: round(expectedCostUsd, 6),
    persistedSeconds: round(persistedSeconds, 2),
    persistedPerSec: Math.round(stored.count / persistedSeconds),
    match,
  };
}
