/**
 * Envoy's gRPC access-log stream → usage, end to end: an Envoy-like client streams to a
 * real gRPC server (port 0) running accessLogImplementation with a real UsageBatcher over
 * a real usage store, on SQLite and PostgreSQL.
 */
import { credentials, type Server, type Client, type ClientWritableStream, type ServiceError } from '@grpc/grpc-js';
import type { EntityManager, Knex } from '@mikro-orm/knex';
import { accessLogImplementation, newAccessLogStats, type AccessLogStats } from '../src/grpc/accesslog-server';
import { UsageBatcher } from '../src/usage/batcher';
import type { UsageEvent } from '../src/usage/types';
import { createUsageStore } from '../src/usage/store';
import { createUsageTables } from '../src/store/usage-tables';
import { openOrm, migrate, type Orm } from '../src/store/orm';
import { ManualClock } from '../src/util/clock';
import { createLogger } from '../src/util/logger';
import { newId } from '../src/util/ids';
import { createTestDatabase, DIALECTS, type TestDatabase } from './support/databases';
import { AccessLogServiceCtor, alsPackage, startServer, stream, wireEntry } from './support/access-log-wire';

const OPTS = { tokensHeader: 'x-usage-tokens', costHeader: 'x-usage-cost-usd' };
const START = Date.UTC(2026, 5, 30, 23, 59, 58, 250); // 2026-06-30
const NOW = Date.UTC(2026, 6, 1, 0, 0, 5); // 2026-07-01, the clock

describe.each(DIALECTS)('access-log stream → usage on %s', (dialect) => {
  let db: TestDatabase;
  let orm: Orm;
  let knex: Knex;
  let batcher: UsageBatcher;
  let stats: AccessLogStats;
  let server: Server;
  let client: Client;
  const clock = new ManualClock(NOW);
  let onRecord: ((e: UsageEvent) => void) | undefined;

  beforeAll(async () => {
    db = await createTestDatabase(dialect);
    orm = await openOrm(db.config);
    await migrate(orm);
    knex = (orm.em as unknown as EntityManager).getKnex();
    batcher = new UsageBatcher(createUsageStore(createUsageTables(orm, dialect)), {
      maxBuffered: 10_000,
      flushAt: 10_000,
      rawEvents: true,
    });
    stats = newAccessLogStats();
    // The real batcher, telling the test when the server has recorded an entry.
    const recorder = {
      record(e: UsageEvent) {
        batcher.record(e);
        onRecord?.(e);
      },
    };
    const started = await startServer(accessLogImplementation(recorder, OPTS, createLogger('silent'), clock, stats));
    server = started.server;
    client = new AccessLogServiceCtor(`127.0.0.1:${started.port}`, credentials.createInsecure());
  });
  afterAll(async () => {
    client.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    await orm.close(true);
    await db.dispose();
  });

  it('records entries with keyward metadata as detail-only usage (requests 0) with status, duration, tokens and cost', async () => {
    const org = newId('org', START);
    const key = newId('key', START);
    const other = newId('key', START + 1);
    const kw = { 'envoy.filters.http.ext_authz': { key_id: key, org_id: org, environment: 'live' } };
    const reply = await stream(client, [
      { identifier: { node: { id: 'envoy-1', cluster: 'edge' }, log_name: 'keyward_usage' } },
      {
        http_logs: {
          log_entry: [
            wireEntry({
              md: kw,
              method: 'POST',
              path: '/v1/chat/completions?stream=true',
              requestId: 'req-1',
              code: 200,
              duration: { seconds: '0', nanos: 250_000_000 },
              responseHeaders: { 'x-usage-tokens': '1234', 'x-usage-cost-usd': '0.0421' },
              start: START,
            }),
            wireEntry({
              md: kw,
              method: 'GET',
              path: '/v1/models',
              code: 404,
              lastByte: { seconds: '0', nanos: 3_500_000 },
              responseHeaders: { 'x-usage-tokens': '12abc', 'x-usage-cost-usd': '-1' },
              start: START,
            }),
            wireEntry({
              md: kw,
              requestHeaders: { ':method': 'PROPFIND' },
              originalPath: '/v1/files/abc?x=1',
              code: 503,
              duration: { seconds: '2', nanos: 500_000_000 },
              lastByte: { seconds: '9', nanos: 0 },
              responseHeaders: { 'X-Usage-Tokens': ' 17 ', 'x-usage-cost-usd': '1e-3' },
              start: START,
            }),
            // Not authorized by keyward: no metadata, another filter's, a non-string key id.
            wireEntry({ method: 'GET', path: '/healthz', code: 200, start: START }),
            wireEntry({ md: { 'envoy.filters.http.jwt_authn': { key_id: key, org_id: org } }, method: 'GET', path: '/x', code: 200 }),
            wireEntry({ md: { 'envoy.filters.http.ext_authz': { key_id: 7, org_id: org } }, method: 'GET', path: '/x', code: 200 }),
          ],
        },
      },
      // A later batch: no start time (the clock's time is used), no response, no duration.
      {
        http_logs: {
          log_entry: [
            wireEntry({ md: { 'envoy.filters.http.ext_authz': { key_id: other, org_id: org } }, method: 'PATCH', path: '/v1/batch' }),
          ],
        },
      },
      { tcp_logs: { log_entry: [{ common_properties: { upstream_cluster: 'db' } }] } },
    ]);
    expect(reply).toEqual({});
    expect(stats).toEqual({ streams: 1, undecodable: 0, entriesSeen: 8, entriesIgnored: 4, entriesRecorded: 4, pauses: 0 });
    // Four cells, and the four raw detail records.
    expect(batcher.stats()).toMatchObject({ buffered: 8 });

    await batcher.flush();
    expect(batcher.stats()).toMatchObject({ buffered: 0, flushed: 4, flushErrors: 0 });

    const events = (await knex('usage_events').where('organization_id', org).orderBy('id').select('*')).map(
      (r: Record<string, unknown>) => ({
        at: typeof r.at === 'number' ? r.at : Date.parse(String(r.at instanceof Date ? r.at.toISOString() : r.at)),
        key: r.key_id,
        request_id: r.request_id,
        endpoint: r.endpoint,
        method: r.method,
        requests: Number(r.requests),
        status: r.status_code === null ? null : Number(r.status_code),
        duration: r.duration_ms === null ? null : Number(r.duration_ms),
        tokens: r.tokens === null ? null : Number(r.tokens),
        cost: r.cost_usd === null ? null : Number(r.cost_usd),
        source: r.source,
      }),
    );
    expect(events).toEqual([
      {
        at: START,
        key,
        request_id: 'req-1',
        endpoint: '/v1/chat/completions',
        method: 'POST',
        requests: 0,
        status: 200,
        duration: 250,
        tokens: 1234,
        cost: 0.0421,
        source: 'accesslog',
      },
      {
        at: START,
        key,
        request_id: null,
        endpoint: '/v1/models',
        method: 'GET',
        requests: 0,
        status: 404,
        duration: 3.5,
        tokens: null,
        cost: null,
        source: 'accesslog',
      },
      {
        at: START,
        key,
        request_id: null,
        endpoint: '/v1/files/abc',
        method: 'PROPFIND',
        requests: 0,
        status: 503,
        duration: 2500,
        tokens: 17,
        cost: 0.001,
        source: 'accesslog',
      },
      {
        at: NOW,
        key: other,
        request_id: null,
        endpoint: '/v1/batch',
        method: 'PATCH',
        requests: 0,
        status: null,
        duration: null,
        tokens: null,
        cost: null,
        source: 'accesslog',
      },
    ]);

    const agg = async (table: string) =>
      (await knex(table).where('organization_id', org).orderBy(['period', 'key_id', 'endpoint']).select('*')).map(
        (r: Record<string, unknown>) => [
          r.period,
          r.key_id === key ? 'key' : 'other',
          r.endpoint,
          r.method,
          Number(r.requests),
          Number(r.errors4xx),
          Number(r.errors5xx),
          Number(r.tokens),
          Number(r.cost_usd),
          Number(r.duration_count),
          Number(r.duration_sum_ms),
          (typeof r.duration_buckets === 'string' ? JSON.parse(r.duration_buckets) : r.duration_buckets) as number[],
        ],
      );
    const b = (i?: number) => {
      const h = new Array<number>(16).fill(0);
      if (i !== undefined) h[i] = 1;
      return h;
    };
    // 250 ms → (200, 500] = bucket 8; 3.5 ms → (2, 5] = 2; 2500 ms → (2000, 5000] = 11.
    expect(await agg('usage_daily')).toEqual([
      ['2026-06-30', 'key', '/v1/chat/completions', 'POST', 0, 0, 0, 1234, 0.0421, 1, 250, b(8)],
      ['2026-06-30', 'key', '/v1/files/abc', 'PROPFIND', 0, 0, 1, 17, 0.001, 1, 2500, b(11)],
      ['2026-06-30', 'key', '/v1/models', 'GET', 0, 1, 0, 0, 0, 1, 3.5, b(2)],
      ['2026-07-01', 'other', '/v1/batch', 'PATCH', 0, 0, 0, 0, 0, 0, 0, b()],
    ]);
    expect((await agg('usage_monthly')).map((r) => r.slice(0, 5))).toEqual([
      ['2026-06', 'key', '/v1/chat/completions', 'POST', 0],
      ['2026-06', 'key', '/v1/files/abc', 'PROPFIND', 0],
      ['2026-06', 'key', '/v1/models', 'GET', 0],
      ['2026-07', 'other', '/v1/batch', 'PATCH', 0],
    ]);
  });

  it('skips messages that cannot be decoded and keeps reading the stream', async () => {
    const org = newId('org', START + 10);
    const key = newId('key', START + 10);
    const before = { ...stats };
    const good = {
      http_logs: {
        log_entry: [
          wireEntry({
            md: { 'envoy.filters.http.ext_authz': { key_id: key, org_id: org } },
            method: 'GET',
            path: '/ok',
            code: 200,
            start: START,
          }),
        ],
      },
    };
    const { StreamAccessLogsMessage } = alsPackage.envoy.service.accesslog.v3 as unknown as Record<
      string,
      { serialize(v: unknown): Buffer }
    >;
    const goodBytes = StreamAccessLogsMessage!.serialize(good);
    // Field 2 (http_logs) as a length-delimited field claiming more bytes than follow.
    const garbage = Buffer.from([0x12, 0x7f, 0x01]);
    const reply = await new Promise((resolve, reject) => {
      const call = client.makeClientStreamRequest(
        '/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs',
        (b: Buffer) => b,
        (b: Buffer) => b,
        { deadline: Date.now() + 15000 } as never,
        (e: ServiceError | null, r?: Buffer) => (e ? reject(e) : resolve(r)),
      );
      call.write(garbage);
      call.write(goodBytes);
      call.end();
    });
    expect(Buffer.isBuffer(reply) && reply.length).toBe(0);
    expect(stats.streams).toBe(before.streams + 1);
    expect(stats.undecodable).toBe(before.undecodable + 1);
    expect(stats.entriesRecorded).toBe(before.entriesRecorded + 1);
    await batcher.flush();
    expect(await knex('usage_events').where('organization_id', org).pluck('endpoint')).toEqual(['/ok']);
  });

  it('tolerates a client that cancels its stream: what arrived is kept, and the server keeps serving', async () => {
    const org = newId('org', START + 20);
    const key = newId('key', START + 20);
    const before = { ...stats };
    const recorded = new Promise<UsageEvent>((resolve) => (onRecord = resolve));
    let call!: ClientWritableStream<unknown> & { cancel(): void };
    const ended = new Promise<ServiceError | null>((resolve) => {
      call = (client as unknown as Record<string, (...args: unknown[]) => unknown>).StreamAccessLogs!.call(
        client,
        (e: ServiceError | null) => resolve(e),
      ) as typeof call;
    });
    call.write({ identifier: { log_name: 'x' } });
    call.write({
      http_logs: {
        log_entry: [
          wireEntry({ md: { 'envoy.filters.http.ext_authz': { key_id: key, org_id: org } }, method: 'GET', path: '/cancelled', code: 200 }),
        ],
      },
    });
    // The server has the entry; the client goes away without ending the stream.
    expect((await recorded).endpoint).toBe('/cancelled');
    onRecord = undefined;
    call.cancel();
    expect((await ended)?.code).toBe(1); // CANCELLED, on the client's side

    expect(await stream(client, [{ identifier: { log_name: 'again' } }])).toEqual({});
    expect(stats.streams).toBe(before.streams + 2);
    expect(stats.entriesRecorded).toBe(before.entriesRecorded + 1);
    await batcher.flush();
    expect(await knex('usage_events').where('organization_id', org).pluck('endpoint')).toEqual(['/cancelled']);
  });
});
