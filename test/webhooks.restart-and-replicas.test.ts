/**
 * The queue is the database: a delivery pending when keyward stops (and an event not
 * yet dispatched) is delivered by the next keyward on the same database; two instances
 * on one database, running their `webhooks` tasks at the same moments, deliver each
 * event exactly once (PostgreSQL: the cursor row lock and FOR UPDATE SKIP LOCKED).
 */
import { randomBytes } from 'node:crypto';
import { createTestDatabase, DIALECTS, type TestDatabase } from './support/databases';
import { startHarness } from './support/harness';
import { startReceiver, TEST_WEBHOOKS, tickWebhooks, type Receiver } from './support/webhook-receiver';

describe.each(DIALECTS)('webhook queue across restarts and replicas on %s', (dialect) => {
  let db: TestDatabase;
  let rx: Receiver;
  // The same hash secret for every instance: it seals the signing secrets.
  const hashSecret = randomBytes(32);
  const start = () => startHarness(dialect, { webhooks: TEST_WEBHOOKS, reuseDatabase: db, hashSecret });
  beforeEach(async () => {
    db = await createTestDatabase(dialect);
    rx = await startReceiver();
  });
  afterEach(async () => {
    await rx.close();
    await db.dispose();
  });

  it('delivers after a restart what was pending or not yet dispatched when it stopped', async () => {
    const first = await start();
    const org = await first.root.createOrganization({ name: 'Restart' });
    const { webhook } = await first.root.createWebhook({ organizationId: org.id, url: rx.url, events: ['key.created'] });
    rx.respond(500);
    const a = await first.root.createKey({ organizationId: org.id, name: 'a' });
    await tickWebhooks(first); // a: one failed attempt, pending
    const b = await first.root.createKey({ organizationId: org.id, name: 'b' }); // b: only an audit row
    await first.stop();
    expect(rx.requests).toHaveLength(1);

    const second = await start();
    try {
      second.clock.advance(10_000);
      await tickWebhooks(second);
      const keyIds = rx.requests.map((r) => (JSON.parse(r.body) as { key_id: string }).key_id);
      expect(keyIds.sort()).toEqual([a.key!.id, a.key!.id, b.key!.id].sort());
      const { deliveries } = await second.root.listWebhookDeliveries({ webhookId: webhook!.id });
      expect(deliveries.map((d) => [d.status, d.attempts.length])).toEqual([
        ['delivered', 1],
        ['delivered', 2],
      ]);
    } finally {
      await second.stop();
    }
  });
});

// PostgreSQL only: two instances on one SQLite file would share this one process, where
// better-sqlite3's blocking busy wait stalls the event loop (separate processes take turns).
describe('webhook queue across replicas on postgres', () => {
  const dialect = 'postgres';
  let db: TestDatabase;
  let rx: Receiver;
  const hashSecret = randomBytes(32);
  const start = () => startHarness(dialect, { webhooks: TEST_WEBHOOKS, reuseDatabase: db, hashSecret });
  beforeEach(async () => {
    db = await createTestDatabase(dialect);
    rx = await startReceiver();
  });
  afterEach(async () => {
    await rx.close();
    await db.dispose();
  });

  it('two instances on one database deliver each event exactly once', async () => {
    const one = await start();
    const two = await start();
    try {
      const org = await one.root.createOrganization({ name: 'Replicas' });
      await one.root.createWebhook({ organizationId: org.id, url: rx.url, events: ['key.created', 'key.revoked'] });
      const keys: string[] = [];
      for (let i = 0; i < 12; i++) {
        const admin = i % 2 === 0 ? one.root : two.root;
        const k = await admin.createKey({ organizationId: org.id, name: `k${i}` });
        keys.push(k.key!.id);
        if (i % 3 === 0) await admin.revokeKey({ id: k.key!.id, reason: 'r' });
        // Both tasks run at the same moment, several times.
        if (i % 4 === 3) await Promise.all([tickWebhooks(one), tickWebhooks(two), tickWebhooks(one)]);
      }
      await Promise.all([tickWebhooks(one), tickWebhooks(two)]);
      await Promise.all([tickWebhooks(one), tickWebhooks(two)]);
      const events = rx.requests.map((r) => JSON.parse(r.body) as { id: string; kind: string; key_id: string });
      const ids = events.map((e) => e.id);
      expect(new Set(ids).size).toBe(ids.length); // no event twice
      expect(
        events
          .filter((e) => e.kind === 'key.created')
          .map((e) => e.key_id)
          .sort(),
      ).toEqual([...keys].sort());
      expect(events.filter((e) => e.kind === 'key.revoked')).toHaveLength(4);
      // Every event was attempted once, by one instance or the other.
      expect(one.app.webhooks.stats.attempts + two.app.webhooks.stats.attempts).toBe(16);
    } finally {
      await one.stop();
      await two.stop();
    }
  });
});
