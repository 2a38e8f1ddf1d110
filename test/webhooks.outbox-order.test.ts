/**
 * The audit log as outbox on PostgreSQL: ids come from a sequence, so a transaction
 * can commit an audit row with a lower id after one with a higher id. The dispatcher
 * waits for audit writers in flight (LOCK … IN SHARE MODE, bounded by lock_timeout)
 * before reading, so the late row is not skipped when the cursor moves past the early
 * one. (Sealed signing secrets: test/keys.secret-box.test.ts.)
 */
import { Client } from 'pg';
import { startHarness, type Harness } from './support/harness';
import { startReceiver, TEST_WEBHOOKS, tickWebhooks, type Receiver } from './support/webhook-receiver';

describe('webhook dispatch order on postgres', () => {
  let h: Harness;
  let rx: Receiver;
  beforeAll(async () => {
    h = await startHarness('postgres', { webhooks: TEST_WEBHOOKS });
    rx = await startReceiver();
  });
  afterAll(async () => {
    await h.stop();
    await rx.close();
  });

  it('does not skip an audit row that commits after a row with a higher id', async () => {
    const org = await h.root.createOrganization({ name: 'Order' });
    await h.root.createWebhook({ organizationId: org.id, url: rx.url, events: ['key.created'] });
    const slow = new Client({ connectionString: h.db.config.kind === 'postgres' ? h.db.config.url : '' });
    await slow.connect();
    try {
      // A writer takes the lower id and has not committed yet...
      await slow.query('begin');
      const low = await slow.query<{ id: string }>(
        `insert into audit_events (at, actor, action, organization_id, key_id, outcome) values (now(), 'admin', 'key.create', $1, 'key_slow', 'success') returning id`,
        [org.id],
      );
      // ...while another commits a higher one.
      const key = await h.root.createKey({ organizationId: org.id, name: 'fast' });
      await tickWebhooks(h); // waits for the slow writer, gives up at lock_timeout, retries later
      expect(h.app.webhooks.stats.passErrors).toBe(1);
      expect(rx.requests).toHaveLength(0);
      await slow.query('commit');
      await tickWebhooks(h);
      const got = rx.requests.map((r) => JSON.parse(r.body) as { id: string; key_id: string });
      expect(got.map((e) => e.key_id).sort()).toEqual([key.key!.id, 'key_slow'].sort());
      expect(got.map((e) => e.id)).toContain(`evt_${low.rows[0]!.id}`);
    } finally {
      await slow.end();
    }
  });
});
