/**
 * When usage cannot be written as fast as Envoy streams access-log entries (here:
 * the usage table is locked by another transaction, on a real PostgreSQL), keyward
 * pauses the stream instead of dropping entries: HTTP/2 flow control holds the sender
 * back, nothing is dropped, and once the store moves again every entry is stored.
 */
import { Client as PgClient } from 'pg';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import type { EntityManager } from '@mikro-orm/knex';
import { StreamAccessLogsMessage } from '../src/gen/envoy/service/accesslog/v3/als';
import { startHarness, type Harness } from './support/harness';

const ENTRIES = 5000;
const PER_MESSAGE = 100;

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('access-log back-pressure on postgres', () => {
  let h: Harness;
  beforeAll(async () => {
    // Raw detail records on: each entry is held until written, so the buffer fills.
    h = await startHarness('postgres', { authz: { usageBufferMax: 1000, usageRawEvents: true } });
  });
  afterAll(async () => {
    await h.stop();
  });

  it('pauses the stream while the usage buffer is congested; drops nothing; stores everything afterwards', async () => {
    const org = await h.root.createOrganization({ name: 'Logs' });
    const key = (await h.root.createKey({ organizationId: org.id, name: 'k' })).key!;
    const message = Buffer.from(
      StreamAccessLogsMessage.encode(
        StreamAccessLogsMessage.fromPartial({
          httpLogs: {
            logEntry: Array.from({ length: PER_MESSAGE }, () => ({
              commonProperties: { metadata: { filterMetadata: { 'envoy.filters.http.ext_authz': { key_id: key.id, org_id: org.id } } } },
              request: { path: '/v1/logged', requestMethod: 1 },
              response: { responseCode: 200 },
            })),
          },
        }),
      ).finish(),
    );

    // Another transaction locks the usage table: every usage write waits for it.
    const locker = new PgClient({ connectionString: h.db.config.url });
    await locker.connect();
    await locker.query('begin');
    await locker.query('lock table usage_events in exclusive mode');

    const client = new Client(`127.0.0.1:${h.app.authzPort}`, credentials.createInsecure());
    const reply = new Promise<void>((resolve, reject) => {
      const call = client.makeClientStreamRequest(
        '/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs',
        (b: Buffer) => b,
        (b: Buffer) => b,
        { deadline: Date.now() + 60_000 } as never,
        (e: ServiceError | null) => (e ? reject(e) : resolve()),
      );
      for (let i = 0; i < ENTRIES / PER_MESSAGE; i++) call.write(message);
      call.end();
    });
    let replied = false;
    void reply.then(
      () => (replied = true),
      () => undefined,
    );

    try {
      await until('the stream to pause', () => h.app.accessLogStats.pauses > 0);
      expect(replied).toBe(false);
      expect(h.app.accessLogStats.entriesRecorded).toBeLessThan(ENTRIES);
      expect(h.app.usage.stats().dropped).toBe(0);
    } finally {
      await locker.query('commit');
      await locker.end();
    }

    await reply;
    client.close();
    expect(h.app.accessLogStats.entriesRecorded).toBe(ENTRIES);
    await h.app.usage.flush();
    expect(h.app.usage.stats().dropped).toBe(0);
    const knex = (h.app.orm.em as unknown as EntityManager).getKnex();
    const stored = await knex('usage_events').where({ key_id: key.id, source: 'accesslog' }).count({ n: '*' });
    expect(Number(stored[0]!.n)).toBe(ENTRIES);
  });
});
