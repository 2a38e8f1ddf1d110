/**
 * Retries and pausing, on each database, driven by the manual clock and the held
 * `webhooks` task: a 500 is retried after 10 s (not before), doubling per failure; an
 * endpoint failing pauseAfterFailures times in a row is paused and that is audited;
 * a paused endpoint gets nothing until UpdateWebhook(active = true) resumes it; a
 * delivery still failing 24 h after it was queued is given up.
 */
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { startReceiver, TEST_WEBHOOKS, tickWebhooks, type Receiver } from './support/webhook-receiver';
import { retryDelayMs } from '../src/webhooks/worker';

describe.each(DIALECTS)('webhook retries and pausing on %s', (dialect) => {
  let h: Harness;
  let rx: Receiver;
  beforeAll(async () => {
    h = await startHarness(dialect, { webhooks: { ...TEST_WEBHOOKS, pauseAfterFailures: 4 } });
    rx = await startReceiver();
  });
  afterEach(() => {
    rx.fallback = 200;
    rx.requests.length = 0;
  });
  afterAll(async () => {
    await h.stop();
    await rx.close();
  });

  async function hooked(name: string) {
    const org = await h.root.createOrganization({ name });
    const { webhook } = await h.root.createWebhook({ organizationId: org.id, url: rx.url, events: ['key.created', 'key.revoked'] });
    return { org, webhook: webhook! };
  }

  it('retries a 500 with backoff from the clock, then delivers the same body', async () => {
    expect([1, 2, 3, 4, 9, 30].map(retryDelayMs)).toEqual([10_000, 20_000, 40_000, 80_000, 2_560_000, 3_600_000]);
    const { org, webhook } = await hooked('Retry');
    rx.respond(500, 500);
    await h.root.createKey({ organizationId: org.id, name: 'k' });
    await tickWebhooks(h);
    expect(rx.requests).toHaveLength(1);

    h.clock.advance(9_999);
    await tickWebhooks(h);
    expect(rx.requests).toHaveLength(1); // not yet due
    h.clock.advance(1);
    await tickWebhooks(h);
    expect(rx.requests).toHaveLength(2);
    h.clock.advance(19_999);
    await tickWebhooks(h);
    expect(rx.requests).toHaveLength(2);
    h.clock.advance(1);
    await tickWebhooks(h);
    expect(rx.requests).toHaveLength(3);
    expect(new Set(rx.requests.map((r) => r.body)).size).toBe(1);

    const [d] = (await h.root.listWebhookDeliveries({ webhookId: webhook.id })).deliveries;
    expect(d!.status).toBe('delivered');
    expect(d!.attempts.map((a) => [a.statusCode, a.error])).toEqual([
      [500, 'http_500'],
      [500, 'http_500'],
      [200, ''],
    ]);
    for (const a of d!.attempts) expect(a.durationMs).toBeGreaterThan(0);
    // A success resets the failure count.
    expect((await h.root.listWebhooks({ organizationId: org.id })).webhooks[0]!.consecutiveFailures).toBe(0);
  });

  it('pauses an endpoint after repeated failures (audited) and resumes it on request', async () => {
    const { org, webhook } = await hooked('Pause');
    rx.fallback = 503;
    const key = await h.root.createKey({ organizationId: org.id, name: 'k' });
    for (let i = 1; i <= 4; i++) {
      await tickWebhooks(h);
      expect(rx.requests).toHaveLength(i);
      h.clock.advance(retryDelayMs(i));
    }
    const [paused] = (await h.root.listWebhooks({ organizationId: org.id })).webhooks;
    expect(paused!.pausedAt).toEqual(new Date(h.clock.now().getTime() - retryDelayMs(4)));
    expect(paused!.consecutiveFailures).toBe(4);
    const audit = (await h.root.listAuditEvents({ organizationId: org.id, action: 'webhook.paused' })).events;
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      actor: 'system',
      outcome: 'success',
      reason: `webhook=${webhook.id} consecutive_failures=4 last_error=http_503`,
    });

    // Paused: nothing is sent, and new events are not queued for it.
    await h.root.revokeKey({ id: key.key!.id, reason: 'while paused' });
    h.clock.advance(3_600_000);
    await tickWebhooks(h);
    expect(rx.requests).toHaveLength(4);
    expect((await h.root.listWebhookDeliveries({ webhookId: webhook.id })).deliveries.map((d) => d.kind)).toEqual(['key.created']);

    rx.fallback = 200;
    const resumed = await h.root.updateWebhook({ id: webhook.id, active: true });
    expect([resumed.pausedAt, resumed.consecutiveFailures]).toEqual([undefined, 0]);
    await tickWebhooks(h);
    expect(rx.requests).toHaveLength(5);
    const [d] = (await h.root.listWebhookDeliveries({ webhookId: webhook.id })).deliveries;
    expect([d!.status, d!.attempts.length]).toEqual(['delivered', 5]);
  });

  it('gives a delivery up after 24 hours of failures', async () => {
    const { org, webhook } = await hooked('GiveUp');
    rx.fallback = 500;
    await h.root.createKey({ organizationId: org.id, name: 'k' });
    // Pausing is not what this checks: resuming after each failure keeps the endpoint from pausing.
    let attempts = 0;
    for (let i = 1; i < 100; i++) {
      await tickWebhooks(h);
      attempts = rx.requests.length;
      const [d] = (await h.root.listWebhookDeliveries({ webhookId: webhook.id })).deliveries;
      if (d!.status !== 'pending') break;
      await h.root.updateWebhook({ id: webhook.id, active: true });
      h.clock.advance(retryDelayMs(attempts));
    }
    const [d] = (await h.root.listWebhookDeliveries({ webhookId: webhook.id })).deliveries;
    expect(d!.status).toBe('failed');
    const first = d!.attempts[0]!.time!.getTime();
    const last = d!.attempts[d!.attempts.length - 1]!.time!.getTime();
    expect(last - first).toBeLessThanOrEqual(24 * 3_600_000);
    expect(last - first + retryDelayMs(d!.attempts.length)).toBeGreaterThan(24 * 3_600_000);
    expect(d!.attempts.length).toBe(attempts);
    h.clock.advance(24 * 3_600_000);
    await tickWebhooks(h);
    expect(rx.requests).toHaveLength(attempts);
  });
});
