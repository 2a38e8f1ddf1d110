/**
 * At least once, on each database: a delivery claimed by a worker that never recorded
 * its attempt (a process that died mid-attempt) is skipped by others until the claim's
 * lease ends, then delivered; an endpoint that does not answer within the timeout is a
 * failed attempt (`timeout`), retried later.
 */
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { startReceiver, TEST_WEBHOOKS, tickWebhooks, type Receiver } from './support/webhook-receiver';
import { createWebhookQueue } from '../src/store/webhooks';
import { eventOfAudit } from '../src/webhooks/payload';

describe.each(DIALECTS)('webhook leases and timeouts on %s', (dialect) => {
  let h: Harness;
  let rx: Receiver;
  beforeAll(async () => {
    h = await startHarness(dialect, { webhooks: { ...TEST_WEBHOOKS, timeoutMs: 300 } });
    rx = await startReceiver();
  });
  afterAll(async () => {
    await h.stop();
    await rx.close();
  });

  it('delivers a delivery whose worker died mid-attempt once its lease ends', async () => {
    const org = await h.root.createOrganization({ name: 'Lease' });
    const { webhook } = await h.root.createWebhook({ organizationId: org.id, url: rx.url, events: ['key.created'] });
    await h.root.createKey({ organizationId: org.id, name: 'k' });
    // Another worker dispatches and claims it for 60 s, then vanishes.
    const other = createWebhookQueue(h.app.orm, dialect);
    await other.dispatch(100, eventOfAudit, h.clock.now());
    const claimed = await other.claim(h.clock.now(), new Date(h.clock.now().getTime() + 60_000), 10);
    expect(claimed.map((c) => c.delivery.webhookId)).toEqual([webhook!.id]);

    await tickWebhooks(h);
    h.clock.advance(59_999);
    await tickWebhooks(h);
    expect(rx.requests).toHaveLength(0);
    h.clock.advance(1);
    await tickWebhooks(h);
    expect(rx.requests).toHaveLength(1);
    const [d] = (await h.root.listWebhookDeliveries({ webhookId: webhook!.id })).deliveries;
    expect([d!.status, d!.attempts.length]).toEqual(['delivered', 1]);
  });

  it('counts an endpoint that does not answer in time as a failed attempt, and retries it', async () => {
    const org = await h.root.createOrganization({ name: 'Slow' });
    const { webhook } = await h.root.createWebhook({ organizationId: org.id, url: rx.url, events: ['key.created'] });
    rx.respond(0);
    await h.root.createKey({ organizationId: org.id, name: 'k' });
    await tickWebhooks(h);
    let [d] = (await h.root.listWebhookDeliveries({ webhookId: webhook!.id })).deliveries;
    expect(d!.attempts.map((a) => [a.statusCode, a.error])).toEqual([[0, 'timeout']]);
    expect(d!.attempts[0]!.durationMs).toBeGreaterThanOrEqual(290);
    expect(d!.status).toBe('pending');
    h.clock.advance(10_000);
    await tickWebhooks(h);
    [d] = (await h.root.listWebhookDeliveries({ webhookId: webhook!.id })).deliveries;
    expect(d!.attempts.map((a) => [a.statusCode, a.error])).toEqual([
      [0, 'timeout'],
      [200, ''],
    ]);
  });
});
